"""Learnability benchmark (not a test): does the training pipeline teach absolute position?

A small Qwen2.5-VL (the real architecture, random initialisation, a few million weights) is trained from
scratch (`--full`) on a flat-style dataset rendered by our renderer at 84x84 pixels (9x9 grid, 9 areas, three
shapes x three colours x two sizes), through the same `vlm_train.train.train` as `scenes2real train`. After each
epoch it answers the held-out 9-way test questions greedily with the evaluation runner's functions; the answers
are parsed by `evaluation.parse`. Chance is 1/9.

At 84 px Qwen's 14-px patches merged 2x2 give a 3x3 grid of image tokens, one per answer area.

    python bench/learn.py                       # render, build the model, train, print JSON
    python bench/learn.py --dataset DIR         # reuse a rendered dataset (DIR/questions/{train,val,test}.jsonl)

Prints one JSON object: dataset counts and render time, model size, per epoch train/val loss and test accuracy
with elapsed time, the final accuracy (also through `scenes2real evaluate`), threads and wall time.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DESIGN = """\
# bench/learn.py: small flat scenes for a from-scratch learnability check
name = "learn-bench"
description = "Flat shapes at 84 px: 3 shapes x 3 colours x 2 sizes x 81 cells, balanced"
seed = {seed}

[image]
width = {size}
height = {size}

[render]
style = "flat"
engine = "workbench"
samples = 8

[grid]
rows = 9
cols = 9

[factors]
shapes = ["square", "circle", "triangle"]
sizes = {{ large = 0.86, small = 0.6 }}

[factors.colors]
red = [255, 0, 0]
green = [0, 255, 0]
blue = [0, 0, 255]

[design]
kind = "balanced"
scenes = {scenes}

[splits]
fractions = {{ train = 0.7, val = 0.1, test = 0.2 }}

[questions]
tasks = ["area9"]
describe = ["color", "shape"]
"""

# The small models: wide enough to learn the task from scratch on a CPU in minutes; usual initialisation
# (the tiny test checkpoints draw wider weights on purpose, which hampers training from scratch).
INIT = dict(initializer_range=0.02)
ARCHS = {
    "qwen2_5_vl": dict(
        text=dict(hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=1024, **INIT,
                  # head_dim 32: 16 rotary frequencies split over (time, height, width)
                  rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]}),
        vision=dict(depth=2, hidden_size=128, intermediate_size=256, num_heads=4, out_hidden_size=128,
                    fullatt_block_indexes=[1], window_size=112, **INIT),
        image_processor=None, processor_kwargs=None),
    # SigLIP vision (learned absolute position embeddings), pixel shuffle 2x2, Llama text model; at 84 px one
    # 84-px image (no tiling) = 6x6 patches = 9 tokens
    "idefics3": dict(
        text=dict(hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=1024, **INIT),
        vision=dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                    image_size=84, patch_size=14, **INIT),
        image_processor=dict(size={"longest_edge": 84}, max_image_size={"longest_edge": 84},
                             do_image_splitting=False),
        processor_kwargs={"image_seq_len": 9}),
}


def render(work: Path, size: int, scenes: int, seed: int) -> tuple[Path, float]:
    config = work / "design.toml"
    config.write_text(DESIGN.format(size=size, scenes=scenes, seed=seed))
    data = work / "data"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "scenes2real", "render", str(config), "--out", str(data)],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return data, time.perf_counter() - started


def build_model(out: Path, family_name: str, seed: int) -> int:
    """A checkpoint with random weights: the family's tiny tokenizer and processor, a wider model (ARCHS)."""
    import dataclasses

    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    from vlm_train.families import family_named
    from vlm_train.tiny import build_processor, build_tokenizer

    arch = ARCHS[family_name]
    family = family_named(family_name)
    tiny = family.tiny
    if arch["image_processor"] is not None:
        tiny = dataclasses.replace(tiny, image_processor=(tiny.image_processor[0], arch["image_processor"]),
                                   processor_kwargs=arch["processor_kwargs"])
    family = dataclasses.replace(family, tiny=tiny)
    processor = build_processor(family, build_tokenizer(family))
    tokenizer = processor.tokenizer
    values = family.tiny.config(tokenizer.convert_tokens_to_ids, len(tokenizer))
    values["text_config"] = {**values["text_config"], **arch["text"]}
    values["vision_config"] = {**values["vision_config"], **arch["vision"]}
    values.update(INIT)
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(AutoConfig.for_model(family.model_type, **values))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return sum(p.numel() for p in model.parameters())


def accuracy_callback(model_dir: Path, questions: Path, results: list, started: float, batch_size: int = 32):
    """After each epoch: greedy answers to the test questions, parsed, compared with the answers."""
    from transformers import AutoProcessor, TrainerCallback

    from blender_scenes.questions import read_questions, record_prompt, resolve_image
    from evaluation.parse import parse_answer
    from evaluation.runner import generate_answers, greedy_config, open_image

    records = read_questions(questions)
    images = [open_image(resolve_image(r, questions), str(questions)) for r in records]
    processor = AutoProcessor.from_pretrained(model_dir)
    processor.tokenizer.padding_side = "left"

    class Accuracy(TrainerCallback):
        def on_epoch_end(self, args, state, control, model=None, **kwargs):
            model.eval()
            config = greedy_config(model, processor, max_new_tokens=6)
            correct = 0
            for start in range(0, len(records), batch_size):
                chunk = records[start:start + batch_size]
                answers = generate_answers(model, processor, [record_prompt(r) for r in chunk],
                                           images[start:start + batch_size], config)
                correct += sum(parse_answer(a, r.task, r.options) == r.answer for a, r in zip(answers, chunk))
            model.train()
            results.append({"epoch": round(state.epoch), "test_accuracy": round(correct / len(records), 4),
                            "elapsed_s": round(time.perf_counter() - started, 1)})
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)

    return Accuracy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "learn-bench")
    parser.add_argument("--dataset", type=Path, help="A rendered dataset to reuse instead of rendering.")
    parser.add_argument("--family", choices=sorted(ARCHS), default="qwen2_5_vl")
    parser.add_argument("--size", type=int, default=84)
    parser.add_argument("--scenes", type=int, default=810)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from blender_scenes.questions import read_questions
    from vlm_train.train import TrainConfig, train

    started = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    render_s = None
    data = args.dataset
    if data is None:
        data, render_s = render(args.work, args.size, args.scenes, args.seed)
    questions = {s: data / "questions" / f"{s}.jsonl" for s in ("train", "val", "test")}
    model_dir = args.work / "model"
    parameters = build_model(model_dir, args.family, args.seed)

    results: list[dict] = []
    run = args.work / "run"
    if run.exists():
        import shutil

        shutil.rmtree(run)
    train_started = time.perf_counter()
    stats = train(TrainConfig(model=str(model_dir), train=str(questions["train"]), val=str(questions["val"]),
                              out=str(run), full=True, lr=args.lr, epochs=args.epochs, batch_size=args.batch_size,
                              patience=args.patience, seed=args.seed, dtype="fp32"),
                  callbacks=[accuracy_callback(model_dir, questions["test"], results, train_started)])
    train_s = time.perf_counter() - train_started

    evaluated = subprocess.run(
        [sys.executable, "-m", "scenes2real", "evaluate", "--model", str(run / "best"), "--questions",
         str(questions["test"]), "--out", str(args.work / "evaluate"), "--device", "cpu", "--batch-size", "32"],
        check=True, cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    evaluation = json.loads(evaluated.stdout[evaluated.stdout.index("{"):])

    epochs = {e["epoch"]: e for e in stats["epochs"]}
    for row in results:
        row.update({k: round(epochs[row["epoch"]][k], 4) for k in ("train_loss", "val_loss")
                    if k in epochs.get(row["epoch"], {})})
    print(json.dumps({
        "dataset": {"path": str(data), "render_s": round(render_s, 1) if render_s else None,
                    **{s: len(read_questions(p)) for s, p in questions.items()}, "image_px": args.size},
        "model": {"architecture": args.family, "parameters": parameters, "init": "random",
                  "text": ARCHS[args.family]["text"], "vision": ARCHS[args.family]["vision"]},
        "training": {"full": True, "lr": args.lr, "batch_size": args.batch_size, "epochs_run": len(stats["epochs"]),
                     "best_epoch": stats.get("best_epoch"), "train_s": round(train_s, 1)},
        "threads": args.threads,
        "epochs": results,
        "best_test_accuracy_evaluate": evaluation["accuracy"],
        "chance": round(1 / 9, 4),
        "wall_s": round(time.perf_counter() - started, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
