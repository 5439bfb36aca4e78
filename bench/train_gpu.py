"""Training throughput on a real-size VLM: samples/s and peak GPU memory of `vlm_train.train.train` (the code
behind `scenes2real train`) with the study's default LoRA recipe, at batch 1 and at growing batch sizes up to
the largest that fits. Prints JSON.

The model is Qwen2.5-VL-3B-Instruct's architecture (config values in bench/eval_gpu.py) with random weights,
saved once to --work, with the tiny tokenizer and the family's real image processor defaults; images are
336x336 flat scenes like the study's (144 image tokens each). Each batch size is one short run (one epoch of
--steps optimizer steps); the first --warmup steps are not timed.

    python bench/train_gpu.py                                  # GPU, bf16 (the default recipe's dtype)
    python bench/train_gpu.py --size tiny --device cpu --steps 3 --max-batch 2   # smoke test on a CPU
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_checkpoint(size: str, out: Path) -> int:
    """Write the random-weight checkpoint (real-size or tiny) and its processor to `out`."""
    import torch
    from transformers import AutoModelForImageTextToText, Qwen2VLImageProcessor

    from bench.eval_gpu import QWEN_IMAGE_DEFAULTS, qwen_3b_config
    from vlm_train.families import family_named
    from vlm_train.tiny import build_processor, build_tiny_model, build_tokenizer

    family = family_named("qwen2_5_vl")
    processor = build_processor(family, build_tokenizer(family))
    if size == "tiny":
        model = build_tiny_model(family, processor.tokenizer)
    else:
        model = AutoModelForImageTextToText.from_config(qwen_3b_config(processor.tokenizer), dtype=torch.bfloat16)
        processor.image_processor = Qwen2VLImageProcessor(**QWEN_IMAGE_DEFAULTS)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return sum(p.numel() for p in model.parameters())


def write_questions(root: Path, split: str, n: int, size: int = 336, seed: int = 0) -> Path:
    """n flat scenes (one coloured square on black) with their 9-way questions, in the dataset layout."""
    from PIL import Image, ImageDraw

    from blender_scenes.labels import LABELS, label_of_box
    from blender_scenes.questions import options_with_answer, question_text, write_jsonl

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        side = rng.choice([size // 10, size // 20])
        x, y = rng.randrange(size - side), rng.randrange(size - side)
        image = Image.new("RGB", (size, size))
        ImageDraw.Draw(image).rectangle([x, y, x + side, y + side], fill=(255, 0, 0))
        rel = f"images/{split}/{i:05d}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        image.save(root / rel)
        answer = label_of_box([x, y, side, side], size, size, "area9")
        rows.append({"id": f"{split}-{i}", "image": rel, "task": "area9", "question": question_text("red square"),
                     "options": options_with_answer("area9", answer, rng.randrange(9), rng), "answer": answer,
                     "split": split})
    path = root / "questions" / f"{split}.jsonl"
    write_jsonl(path, rows)
    assert len(LABELS["area9"]) == 9
    return path


def timing_callback(warmup: int, record: dict):
    import torch
    from transformers import TrainerCallback

    class Timing(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == warmup:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                record["start"] = time.perf_counter()
                record["start_step"] = state.global_step

        def on_epoch_end(self, args, state, control, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
                record["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
            record["seconds"] = time.perf_counter() - record["start"]
            record["steps"] = state.global_step - record["start_step"]

    return Timing()


def run_batch(model_dir: Path, train_file: Path, val_file: Path, work: Path, batch: int, args) -> dict:
    import torch

    from vlm_train.train import TrainConfig, train

    out = work / f"run-b{batch}"
    shutil.rmtree(out, ignore_errors=True)
    record: dict = {}
    config = TrainConfig(model=str(model_dir), train=str(train_file), val=str(val_file), out=str(out),
                         batch_size=batch, epochs=1, dtype=args.dtype,
                         gradient_checkpointing=args.gradient_checkpointing)
    fits = True
    try:
        with contextlib.redirect_stdout(sys.stderr):  # the Trainer's log lines; stdout is the JSON
            train(config, callbacks=[timing_callback(args.warmup, record)])
    except torch.cuda.OutOfMemoryError:
        fits = False
    finally:
        shutil.rmtree(out, ignore_errors=True)  # checkpoints of a 3B run are large
    # the failed run's model and optimizer are garbage once the exception is gone
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if not fits:
        return {"batch_size": batch, "fits": False}
    samples = record["steps"] * batch
    return {"batch_size": batch, "fits": True, "timed_steps": record["steps"],
            "seconds_per_step": round(record["seconds"] / record["steps"], 4),
            "samples_per_second": round(samples / record["seconds"], 3), "peak_gpu_memory_gib": record.get("peak_gib")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["3b", "tiny"], default="3b")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "train-gpu-bench")
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per batch size (one epoch)")
    parser.add_argument("--warmup", type=int, default=2, help="steps not timed")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--dtype", choices=["auto", "bf16", "fp32"], default="auto")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    args = parser.parse_args()
    if args.warmup >= args.steps:
        parser.error("--warmup must be below --steps")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import torch
    import transformers

    started = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    model_dir = args.work / f"qwen2_5_vl-{args.size}"
    parameters = build_checkpoint(args.size, model_dir)
    build_seconds = time.perf_counter() - started
    data = args.work / "data"
    val_file = write_questions(data, "val", 2, seed=1)

    results = []
    batch = 1
    while batch <= args.max_batch:
        train_file = write_questions(data, f"train-b{batch}", args.steps * batch)
        result = run_batch(model_dir, train_file, val_file, args.work, batch, args)
        results.append(result)
        print(json.dumps(result), file=sys.stderr, flush=True)
        if not result["fits"]:
            break
        batch *= 2
    fitting = [r for r in results if r["fits"]]
    print(json.dumps({
        "bench": "train_gpu", "model": f"qwen2_5_vl-{args.size} (random weights)",
        "recipe": "LoRA r=32 alpha=64 dropout=0 on q/k/v of the language model and the vision blocks' qkv, AdamW",
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "dtype": args.dtype, "gradient_checkpointing": args.gradient_checkpointing,
        "parameters": parameters, "image_px": 336, "build_seconds": round(build_seconds, 1),
        "batches": results,
        "largest_batch_that_fits": fitting[-1]["batch_size"] if fitting else None,
        "batch_1": fitting[0] if fitting else None,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "wall_s": round(time.perf_counter() - started, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
