"""Training throughput against the tool users would pick instead: our `train` vs TRL's `SFTTrainer`.

Both sides fine-tune the same checkpoint on the same civet questions with the same LoRA (r, alpha, dropout,
target modules: the family table's q/k/v of both towers), batch size, number of steps, learning rate, seed,
optimizer and dtype, each run in its own process:
- **ours**: `vlm_train.train.train` (the function behind `scenes2real train`) on the question file;
- **TRL**: `SFTTrainer` on our TRL export (`scenes2real export --format trl`: `messages` + an `images` list of
  paths, read with `datasets` and cast to images), with TRL's own VLM collation (`assistant_only_loss=True`:
  TRL recognises the published SmolVLM chat template and masks the same tokens ours does; both report the same
  training loss).
Both checkpoint once at the end of the epoch (our `train` saves one every epoch; TRL is told `save_strategy
="epoch"`) and neither evaluates; TRL's `gradient_checkpointing` (its default: True) is off, as in ours, so both
do the same work per step. The order alternates over `--repeat` pairs (ours first, then TRL first, ...).

The model: the published SmolVLM-256M-Instruct architecture (Idefics3: SigLIP-base vision encoder at 512 px,
patch 16, 12 layers of width 768; pixel shuffle by 4 (64 image tokens); SmolLM2-135M text model, 30 layers of
width 576, vocabulary 49,280, untied output layer: 256.5M weights, 1.03 GB in fp32) with random weights, built
locally (the hub is offline) with our tiny SmolVLM tokenizer and the published chat template. One image tile per
question (longest edge 512 px): the published processor upsamples a 336 px civet image to 2,048 px and cuts 16
tiles + a global one, 17x the vision work, out of reach on a 2-core CPU.

Figures per run: samples/s over the Trainer's loop (`on_train_begin` to `on_train_end`: every step and the
epoch-end checkpoint), samples per CPU second of that loop, the best step after the first, the library call's
seconds (ours: `train()`, checks and best/ included; TRL: dataset, model, trainer, train and `save_model`), the
process's wall seconds, its peak RSS (`wait4`), and the training loss. Ratios are ours / TRL per pair; the summary
gives their median, min and max. One torch thread per side by default (`--threads`): on the shared 2-core machine
two threads spin-wait on each other whenever another job holds a core, which made steps 1.5-3x slower and their
times swing by +-30%; with one thread a step's CPU time varies by a few percent.

    python bench/train_vs_trl.py                         # 5 pairs, batch 2, 3 steps (~9 min on 2 cores)
    python bench/train_vs_trl.py --repeat 3 --steps 4 --threads 0
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# HuggingFaceTB/SmolVLM-256M-Instruct's config.json (model_type idefics3): the widths and depths that set the work
PUBLISHED_TEXT = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                      num_key_value_heads=3, head_dim=64, max_position_embeddings=8192, rope_theta=100000.0,
                      rms_norm_eps=1e-5, vocab_size=49280, initializer_range=0.041666666666666664,
                      tie_word_embeddings=False)
PUBLISHED_VISION = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                        image_size=512, patch_size=16, initializer_range=0.02)
PUBLISHED = dict(scale_factor=4, initializer_range=0.02, tie_word_embeddings=False)
# (512 / 16)^2 patches / 4^2 = 64 image tokens per tile; one tile of 512 px (see the module's docstring)
IMAGE_PROCESSOR = dict(size={"longest_edge": 512}, max_image_size={"longest_edge": 512}, do_image_splitting=True)
IMAGE_SEQ_LEN = 64
ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


# --- shared set-up (also used by bench/eval_vs_generate.py) -------------------------------------------------

def smolvlm_family():
    """The family-table entry of a SmolVLM (v1) checkpoint: the Idefics3 architecture with SmolLM2's tokens
    (<|im_start|> begins, <|im_end|> pads) and the published SmolVLM chat template."""
    from vlm_train.families import family_named

    idefics3, smolvlm = family_named("idefics3"), family_named("smolvlm")
    return dataclasses.replace(
        idefics3, special_tokens=smolvlm.special_tokens, bos_token=smolvlm.bos_token, pad_token=smolvlm.pad_token,
        template=smolvlm.template,
        tiny=dataclasses.replace(idefics3.tiny, config=smolvlm.tiny.config,
                                 image_processor=("Idefics3ImageProcessor", IMAGE_PROCESSOR),
                                 processor_kwargs={"image_seq_len": IMAGE_SEQ_LEN}))


def build_smolvlm_256m(out: Path, seed: int = 0) -> dict:
    """A SmolVLM-256M-size checkpoint with random weights in `out` (reused when it is there); returns its size."""
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return json.loads((out / "bench_model.json").read_text())
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    from vlm_train.tiny import build_processor, build_tokenizer

    family = smolvlm_family()
    processor = build_processor(family, build_tokenizer(family))
    tokenizer = processor.tokenizer
    values = family.tiny.config(tokenizer.convert_tokens_to_ids, len(tokenizer))
    values["text_config"] = {**values["text_config"], **PUBLISHED_TEXT}
    values["vision_config"] = {**values["vision_config"], **PUBLISHED_VISION}
    values.update(PUBLISHED)
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(AutoConfig.for_model("idefics3", **values))
    with torch.no_grad():
        # the local tokenizer has a few hundred tokens of the 49,280: zero output rows for the others, so greedy
        # answers are made of tokens that decode to text (the work per token is unchanged)
        model.lm_head.weight[len(tokenizer):] = 0
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    staging = out.with_name(out.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    processor.save_pretrained(staging)
    info = {"architecture": "idefics3 (SmolVLM-256M-Instruct widths and depths)", "init": "random", "seed": seed,
            "parameters": sum(p.numel() for p in model.parameters()), "text": PUBLISHED_TEXT,
            "vision": PUBLISHED_VISION, "scale_factor": PUBLISHED["scale_factor"], "image_processor": IMAGE_PROCESSOR,
            "image_tokens": IMAGE_SEQ_LEN, "tokenizer_tokens": len(tokenizer), "template": family.template}
    (staging / "bench_model.json").write_text(json.dumps(info, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return info


def render_civet(out: Path, split: str, limit: int) -> Path:
    """The first `limit` civet scenes of `split` (one area9 question each); returns the question file."""
    questions = out / "questions" / f"{split}.jsonl"
    if not questions.is_file() or len(questions.read_text().splitlines()) != limit:
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "scenes2real", "render", "--preset", "civet", "--split", split,
                        "--limit", str(limit), "--out", str(out), "--quiet"], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
    return questions


def run_worker(script: Path, side: str, config: dict, work: Path, threads: int | None) -> dict:
    """Run `script --worker SIDE` in its own process; returns what it wrote, plus its wall time and peak RSS."""
    result = work / f"result-{side}.json"
    result.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env.update(ENV, **({"OMP_NUM_THREADS": str(threads)} if threads else {}))
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with open(work / f"log-{side}.txt", "w") as log:
        child = subprocess.Popen([sys.executable, str(script), "--worker", side, "--config", json.dumps(config),
                                  "--result", str(result)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)   # reaped here, for the rusage
    wall = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"the {side} run failed (exit {child.returncode}); see {work}/log-{side}.txt")
    return {**json.loads(result.read_text()), "process_wall_s": round(wall, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "load_average_before": round(load_before, 2)}


def spread(values: list[float], digits: int = 3) -> dict:
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits)}


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("trl", "datasets", "accelerate"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


# --- the two sides (each in its own process) ---------------------------------------------------------------

def _clock():
    """A Trainer callback recording the wall and CPU seconds (this process, all threads) of the training loop and of
    each step."""
    from transformers import TrainerCallback

    def now() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    class Clock(TrainerCallback):
        def __init__(self):
            self.begin = self.end = None
            self.steps: list[list] = []

        def on_train_begin(self, args, state, control, **kwargs):
            self.begin = now()

        def on_step_begin(self, args, state, control, **kwargs):
            self.steps.append([now(), None])

        def on_step_end(self, args, state, control, **kwargs):
            self.steps[-1][1] = now()

        def on_train_end(self, args, state, control, **kwargs):
            self.end = now()

        def figures(self, batch_size: int) -> dict:
            n, samples = len(self.steps), len(self.steps) * batch_size
            wall, cpu = (self.end[i] - self.begin[i] for i in (0, 1))
            later = [b[0] - a[0] for a, b in self.steps[1:]]
            return {"steps": n, "samples": samples, "loop_s": round(wall, 2), "loop_cpu_s": round(cpu, 2),
                    "step_s": [round(b[0] - a[0], 2) for a, b in self.steps],
                    "step_cpu_s": [round(b[1] - a[1], 2) for a, b in self.steps],
                    "samples_per_s": round(samples / wall, 5),
                    # per CPU second: with one thread a run's CPU time hardly moves with other jobs on the machine
                    "samples_per_cpu_s": round(samples / cpu, 5),
                    # the least disturbed step after the first
                    "best_step_samples_per_s": round(batch_size / min(later), 5) if later else None}

    return Clock()


def worker_ours(cfg: dict) -> dict:
    # what the TRL side imports before its clock starts (ours imports them inside `train`)
    import peft  # noqa: F401
    import torch  # noqa: F401
    from transformers import AutoModelForImageTextToText, AutoProcessor, Trainer  # noqa: F401

    from vlm_train.train import TrainConfig, train

    clock = _clock()
    out = Path(cfg["out"])
    shutil.rmtree(out, ignore_errors=True)
    started, cpu_started = time.perf_counter(), time.process_time()
    stats = train(TrainConfig(model=cfg["model"], train=cfg["questions"], out=str(out), epochs=1,
                              batch_size=cfg["batch_size"], lr=cfg["lr"], seed=cfg["seed"], dtype="auto",
                              lora_r=cfg["lora_r"], lora_alpha=cfg["lora_alpha"], lora_dropout=cfg["lora_dropout"]),
                  callbacks=[clock])
    call, call_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {**clock.figures(cfg["batch_size"]), "call_s": round(call, 2), "call_cpu_s": round(call_cpu, 2),
            "train_loss": stats["epochs"][0].get("train_loss")}


def worker_trl(cfg: dict) -> dict:
    import torch
    from datasets import Image, List, load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import SFTConfig, SFTTrainer

    from vlm_train.checkpoint import pick_device, resolve_dtype
    from vlm_train.lora import family_targets

    clock = _clock()
    out = Path(cfg["out"])
    shutil.rmtree(out, ignore_errors=True)
    started, cpu_started = time.perf_counter(), time.process_time()
    dataset = load_dataset("json", data_files=cfg["trl_file"], split="train", cache_dir=str(out / "datasets"))
    dataset = dataset.cast_column("images", List(Image()))
    dtype_name, dtype = resolve_dtype("auto", pick_device("auto"))   # what our `train --dtype auto` picks
    processor = AutoProcessor.from_pretrained(cfg["model"])
    model = AutoModelForImageTextToText.from_pretrained(cfg["model"], dtype=dtype)
    args = SFTConfig(
        output_dir=str(out / "checkpoints"), per_device_train_batch_size=cfg["batch_size"], num_train_epochs=1,
        learning_rate=cfg["lr"], seed=cfg["seed"], data_seed=cfg["seed"], optim="adamw_torch",
        assistant_only_loss=True, max_length=None, gradient_checkpointing=False, bf16=dtype_name == "bf16",
        save_strategy="epoch", logging_strategy="epoch", eval_strategy="no", report_to="none", disable_tqdm=True,
        dataloader_num_workers=0, dataloader_pin_memory=torch.cuda.is_available())
    lora = LoraConfig(r=cfg["lora_r"], lora_alpha=cfg["lora_alpha"], lora_dropout=cfg["lora_dropout"],
                      target_modules=family_targets(model.config.model_type), bias="none", task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=processor, peft_config=lora,
                         callbacks=[clock])
    result = trainer.train()
    trainer.save_model(str(out / "best"))
    processor.save_pretrained(str(out / "best"))
    call, call_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {**clock.figures(cfg["batch_size"]), "call_s": round(call, 2), "call_cpu_s": round(call_cpu, 2),
            "train_loss": result.training_loss}


# --- the bench ---------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "train-vs-trl")
    parser.add_argument("--repeat", type=int, default=5, help="pairs of runs (ours, TRL), the order alternating")
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per run (one epoch of steps x batch)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--lora-r", type=int, default=32)
    parser.add_argument("--lora-alpha", type=int, default=64)
    parser.add_argument("--lora-dropout", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of both sides (OMP_NUM_THREADS; 0: torch's default, one per core). One by "
                             "default: on a shared machine two threads spin-wait on each other, and a run's CPU time "
                             "then depends on the other jobs")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--worker", choices=["ours", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        os.environ.update(ENV)
        figures = (worker_ours if args.worker == "ours" else worker_trl)(json.loads(args.config))
        args.result.write_text(json.dumps(figures))
        return

    from bench.provenance import provenance

    started = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    samples = args.steps * args.batch_size
    questions = render_civet(args.work / "data", "train", samples)
    export = args.work / "trl"
    shutil.rmtree(export, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "scenes2real", "export", str(questions), "--format", "trl", "--out",
                    str(export)], check=True, cwd=ROOT, stdout=subprocess.DEVNULL, env={**os.environ, **ENV})
    model_info = build_smolvlm_256m(args.work / "model")
    common = dict(model=str(args.work / "model"), questions=str(questions), trl_file=str(next(export.glob("*.jsonl"))),
                  batch_size=args.batch_size, lr=args.lr, seed=args.seed, lora_r=args.lora_r,
                  lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout)
    pairs = []
    for r in range(args.repeat):
        order = ("ours", "trl") if r % 2 == 0 else ("trl", "ours")
        pair = {"order": list(order)}
        for side in order:
            pair[side] = run_worker(Path(__file__), side, {**common, "out": str(args.work / f"run-{side}")},
                                    args.work, args.threads)
            print(json.dumps({"pair": r, "side": side, **pair[side]}), file=sys.stderr, flush=True)
        pairs.append(pair)

    def ratios(key: str, digits: int = 3) -> dict:
        return spread([p["ours"][key] / p["trl"][key] for p in pairs], digits)

    def side(name: str) -> dict:
        runs = [p[name] for p in pairs]
        return {key: spread([run[key] for run in runs], 4) for key in
                ("samples_per_s", "samples_per_cpu_s", "best_step_samples_per_s", "loop_s", "loop_cpu_s",
                 "call_s", "call_cpu_s", "process_wall_s", "peak_rss_mb")}

    summary = {
        "ratio_ours_over_trl": {"samples_per_s": ratios("samples_per_s"),
                                "samples_per_cpu_s": ratios("samples_per_cpu_s"),
                                "best_step_samples_per_s": ratios("best_step_samples_per_s"),
                                "call_s": ratios("call_s"), "call_cpu_s": ratios("call_cpu_s"),
                                "process_wall_s": ratios("process_wall_s"), "peak_rss": ratios("peak_rss_mb")},
        "ours": side("ours"), "trl": side("trl"),
    }
    ratio = {key: value["median"] for key, value in summary["ratio_ours_over_trl"].items()}
    print(json.dumps({
        "goal": "ours >= 1.0x TRL's samples/s, peak RSS <= 1.1x (medians of the pairs' ratios)",
        "met": {"samples_per_s": ratio["samples_per_s"] >= 1.0, "samples_per_cpu_s": ratio["samples_per_cpu_s"] >= 1.0,
                "peak_rss": ratio["peak_rss"] <= 1.1},
        **summary,
        "same_loss": all(abs(p["ours"]["train_loss"] - p["trl"]["train_loss"]) < 1e-3 for p in pairs),
        "setup": {"steps": args.steps, "batch_size": args.batch_size, "samples_per_run": samples,
                  "lora": {"r": args.lora_r, "alpha": args.lora_alpha, "dropout": args.lora_dropout,
                           "targets": "family table (idefics3): q/k/v of the text model and the vision encoder"},
                  "lr": args.lr, "threads": args.threads or "torch's default", "dtype": "auto (fp32 on the CPU)",
                  "data": "civet preset, train split, first {} scenes (area9), 336 px".format(samples),
                  "trl": {"assistant_only_loss": True, "gradient_checkpointing": False, "save_strategy": "epoch",
                          "input": "scenes2real export --format trl, datasets.load_dataset('json') + "
                                   "cast_column('images', List(Image()))"},
                  "model": model_info},
        "pairs": pairs,
        "wall_s": round(time.perf_counter() - started, 1),
        "provenance": {**provenance(args.seed), "more_versions": versions()},
    }, indent=2))


if __name__ == "__main__":
    main()
