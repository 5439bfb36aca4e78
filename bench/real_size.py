"""Real size on the CPU (issue 21): the study's models at their published size, with random weights, through the
code the CLI runs, and how much memory each needs. Prints JSON.

Per model of bench/real_size_configs.py (the published config values, with their sources): the checkpoint is
built in bf16 straight from its config (parameters are created in bf16, never as fp32 copies), with a tokenizer
made here (vlm_train/tiny.py, the family's special tokens; the embedding matrix has the published vocabulary
size) and the family's processor at the published image settings, saved with `save_pretrained` and from then on
loaded by `from_pretrained` like a download. Then, each phase in its own process so that its peak memory is its
own (`ru_maxrss` of the child, from `os.wait4`):

- `train`: `vlm_train.train.train` (the code behind `scenes2real train`) with the study's recipe: LoRA r=32,
  alpha=64 on q/k/v of both towers, batch 1, bf16, `--gradient-checkpointing`, one epoch of --steps civet records
  (336x336, rendered here with `scenes2real render --preset civet`) at the processor's real image size;
- `evaluate`: `evaluation.runner.run_evaluation` with the trained adapter, greedy, 16 new tokens, --questions;
- `probe`: `evaluation.probe.run_probe`, hidden states at every layer for --probe-records records (two answers
  with two records each, 2 folds: the fewest the probe accepts).

After the last training step the same process measures the activation memory of one training example (one
forward, nothing kept): the bytes autograd saves for backward, per checkpointed block (a decoder layer or vision
block) and outside them, and each block's input. Without gradient checkpointing the example needs all of them;
with it, the bytes saved outside blocks, every block's input (what a checkpoint keeps) and the largest block (the
one recomputed at a time). `derived` turns these measured figures into the GPU memory each model needs (formulas
in `derived.formulas`); the README's table comes from it.

Before each phase the free memory (MemAvailable) must exceed the phase's estimate (bf16 weights + a margin) plus
--reserve-gb, else the phase is skipped with the reason; while a phase runs, it is killed (only that child)
if MemAvailable falls below --reserve-gb, so other work on the machine is never the one the kernel kills.
Checkpoints are removed after each model (a 7-8B model is 15-17 GB on disk) unless --keep.

    python bench/real_size.py > bench/results/real-size.json
    python bench/real_size.py --models Qwen2.5-VL-3B-Instruct --steps 3 --questions 2
    python bench/real_size.py --shrink --work /tmp/rs-dev          # 2 layers a tower: checks the script quickly
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))   # run from a checkout: python bench/real_size.py

from bench.provenance import provenance  # noqa: E402
from bench.real_size_configs import MODELS  # noqa: E402

GIB = 2**30
PHASES = ("build", "train", "evaluate", "probe")
MAX_NEW_TOKENS = 16
# GPUs a user may be offered, with the memory a job can use on each (GiB; a little under the nominal size)
GPUS = (("16 GB (T4, V100-16G)", 15.0), ("24 GB (L4, A10, RTX 4090)", 23.0), ("40 GB (A100-40G)", 39.0),
        ("48 GB (L40S, A6000)", 47.0), ("80 GB (A100-80G, H100)", 78.0), ("141 GB (H200)", 139.0))
CUDA_OVERHEAD_GIB = 1.0   # CUDA context, kernels and allocator slack: an assumption, not measured here


# --- machine -----------------------------------------------------------------------------------------------

def mem_available() -> int:
    """MemAvailable of /proc/meminfo in bytes: what can be allocated without swapping or killing."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/meminfo has no MemAvailable")


def rss_now() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def gb(n: float | None) -> float | None:
    return None if n is None else round(n / GIB, 2)


# --- the civet records -------------------------------------------------------------------------------------

def prepare_data(work: Path, steps: int, questions: int, probe_records: int) -> dict[str, Path]:
    """Render civet scenes with the CLI (a separate process: bpy and torch never share one) and write the three
    question files: the first --steps train records, the first --questions test records, and for the probe
    --probe-records val records, two per answer (the first answers that have two)."""
    data = work / "data"
    per_split = max(steps, questions, 24)
    if not (data / "questions" / "test.jsonl").is_file() or \
            sum(1 for _ in open(data / "questions" / "train.jsonl")) < per_split:
        shutil.rmtree(data, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "scenes2real", "render", "--preset", "civet", "--limit", str(per_split),
                        "--out", str(data), "--quiet"], check=True, cwd=ROOT, stdout=sys.stderr,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})

    def rows(split):
        return [json.loads(line) for line in open(data / "questions" / f"{split}.jsonl", encoding="utf-8")]

    by_answer: dict[str, list[dict]] = {}
    for row in rows("val"):
        by_answer.setdefault(row["answer"], []).append(row)
    pairs = [group[:2] for group in by_answer.values() if len(group) >= 2][: max(2, probe_records // 2)]
    files = {"train": rows("train")[:steps], "evaluate": rows("test")[:questions],
             "probe": [row for pair in pairs for row in pair]}
    paths = {}
    for name, chosen in files.items():
        paths[name] = data / "questions" / f"real-size-{name}.jsonl"
        paths[name].write_text("".join(json.dumps(r) + "\n" for r in chosen), encoding="utf-8")
    return paths


# --- the checkpoint (child process) ------------------------------------------------------------------------

def model_config(name: str, tokenizer, shrink: bool = False):
    """The published configuration of `name` with the token ids of our tokenizer (taken from the family's tiny
    recipe, which knows which ids its config needs); `shrink` keeps two layers a tower (script checks only)."""
    from transformers import AutoConfig

    from vlm_train.families import family_named

    spec = MODELS[name]
    family = family_named(spec["family"])
    tiny = family.tiny.config(tokenizer.convert_tokens_to_ids, len(tokenizer))
    values = {**{k: v for k, v in tiny.items() if k.endswith(("_id", "_index"))}, **spec["config"]}
    values["text_config"] = {**{k: v for k, v in tiny["text_config"].items() if k.endswith("_id")},
                             **spec["text_config"]}
    for key in ("vision_config", "vit_config", "adapter_config"):
        if key in spec:
            values[key] = dict(spec[key])
    if shrink:
        values["text_config"]["num_hidden_layers"] = 2
        vision = values.get("vision_config") or values.get("vit_config")
        for key in ("depth", "num_hidden_layers"):
            if key in vision:
                vision[key] = 2
        if "fullatt_block_indexes" in vision:
            vision["fullatt_block_indexes"] = [1]
        if "adapter_config" in values:
            vision["num_hidden_layers"] = 9
    return AutoConfig.for_model(family.model_type, **values)


def build_processor(name: str, tokenizer):
    """The family's processor classes (vlm_train/families.py) at the model's published image settings."""
    import transformers

    from vlm_train.families import family_named

    spec = MODELS[name]
    family = family_named(spec["family"])
    recipe = family.tiny
    parts = {"image_processor": getattr(transformers, recipe.image_processor[0])(**spec["image_processor"]),
             "tokenizer": tokenizer}
    if recipe.video_processor:
        parts["video_processor"] = getattr(transformers, recipe.video_processor[0])(**(spec["video_processor"] or {}))
    kwargs = {**recipe.processor_kwargs, **spec["processor_kwargs"]}
    return getattr(transformers, recipe.processor_class)(**parts, chat_template=family.chat_template, **kwargs)


def count_parameters(name: str, shrink: bool) -> int:
    """Parameters of the architecture, counted on the meta device (nothing allocated)."""
    import torch
    from transformers import AutoModelForImageTextToText

    from vlm_train.families import family_named
    from vlm_train.tiny import build_tokenizer

    tokenizer = build_tokenizer(family_named(MODELS[name]["family"]))
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(model_config(name, tokenizer, shrink))
    return sum(p.numel() for p in model.parameters())


def text_dims(config) -> dict:
    text = config.get_text_config()
    heads = text.num_attention_heads
    return {"layers": text.num_hidden_layers, "hidden": text.hidden_size, "kv_heads": text.num_key_value_heads,
            "head_dim": getattr(text, "head_dim", None) or text.hidden_size // heads, "vocab": text.vocab_size}


def phase_build(name: str, model_dir: Path, paths: dict, seed: int, shrink: bool) -> dict:
    """Build the checkpoint in bf16 (torch's default dtype set to bf16 while the modules are created, so no
    fp32 tensor is ever allocated), save it with its processor, and count the image and sequence tokens the
    processor makes of one training record."""
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText

    from blender_scenes.prompts import chat_turns, record_prompt
    from blender_scenes.questions import read_questions, resolve_image
    from blender_scenes.files import temporary_name
    from vlm_train.families import family_named
    from vlm_train.tiny import build_tokenizer

    started = time.perf_counter()
    family = family_named(MODELS[name]["family"])
    processor = build_processor(name, build_tokenizer(family))
    tokenizer = processor.tokenizer
    config = model_config(name, tokenizer, shrink)
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config, dtype=torch.bfloat16)
    dtypes = sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters()})
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    parameters = sum(p.numel() for p in model.parameters())
    built = time.perf_counter()
    rss_built = rss_now()
    staging = temporary_name(model_dir)
    shutil.rmtree(model_dir, ignore_errors=True)
    # small shards: serialising one costs one shard's copy; the hub's key layout unless the data says otherwise
    original_format = MODELS[name].get("save_original_format", True)
    model.save_pretrained(staging, max_shard_size="1GB", save_original_format=original_format)
    processor.save_pretrained(staging)
    staging.rename(model_dir)
    saved = time.perf_counter()

    record = read_questions(paths["train"])[0]
    with Image.open(resolve_image(record, paths["train"])) as im:
        image = im.convert("RGB")
    text = processor.apply_chat_template(chat_turns(record_prompt(record), record.answer), tokenize=False)
    ids = processor(text=[text], images=[[image]], return_tensors="pt")["input_ids"][0]
    return {"parameters": parameters, "parameter_dtypes": dtypes, "image_size": list(image.size),
            "image_tokens": int((ids == config.image_token_id).sum()), "sequence_tokens": int(ids.numel()),
            "text": text_dims(config), "build_seconds": round(built - started, 1),
            "save_seconds": round(saved - built, 1), "rss_after_build_gb": gb(rss_built),
            "checkpoint_layout": "hub (save_original_format)" if original_format else "transformers' own",
            "checkpoint_gb": gb(sum(f.stat().st_size for f in model_dir.iterdir()))}


# --- training (child process) ------------------------------------------------------------------------------

def saved_activations(model, batch) -> dict:
    """What one training example keeps for backward, measured on one forward pass with gradients on and
    gradient checkpointing off: every tensor autograd saves is counted once (by storage; parameters excluded)
    and dropped, so the pass holds about one block's activations at a time. Counted per checkpointed block
    (transformers' GradientCheckpointingLayer: decoder layers, vision blocks) and outside them; each block's
    input (`hidden_states`) is what a checkpoint keeps of it."""
    import torch
    from transformers.modeling_layers import GradientCheckpointingLayer

    from vlm_train.train import answer_logits_only

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    outside = {"bytes": 0, "seen": set(), "keep": []}
    state = {"block": None, "depth": 0}
    blocks: list[dict] = []

    def pack(tensor):
        storage = tensor.untyped_storage()
        ptr = storage.data_ptr()
        if ptr in params or ptr in outside["seen"]:
            return None
        region = state["block"] or outside
        if ptr not in region["seen"]:
            region["seen"].add(ptr)
            region["keep"].append(tensor)   # alive until the region ends, so its address is not reused meanwhile
            region["bytes"] += storage.nbytes()
        return None

    def unpack(_):
        raise RuntimeError("measurement pass: no backward")

    def before(module, args, kwargs):
        state["depth"] += 1
        if state["depth"] == 1:
            hidden = args[0] if args else kwargs.get("hidden_states")
            state["block"] = {"kind": type(module).__name__, "bytes": 0, "seen": set(), "keep": [],
                              "input": hidden.numel() * hidden.element_size() if torch.is_tensor(hidden) else 0}

    def after(module, args, kwargs, output):
        state["depth"] -= 1
        if state["depth"] == 0:
            block = state["block"]
            blocks.append({"kind": block["kind"], "bytes": block["bytes"], "input": block["input"]})
            state["block"] = None

    handles = [m.register_forward_pre_hook(before, with_kwargs=True) for m in model.modules()
               if isinstance(m, GradientCheckpointingLayer)]
    handles += [m.register_forward_hook(after, with_kwargs=True) for m in model.modules()
                if isinstance(m, GradientCheckpointingLayer)]
    # transformers 5.25 renamed it (the old name warns); the trainer enabled it under the old name
    (getattr(model, "activation_checkpointing_disable", None) or model.gradient_checkpointing_disable)()
    model.train()
    inputs = answer_logits_only(dict(batch))   # what the trainer's compute_loss passes: logits at the answer only
    try:
        with torch.enable_grad(), torch.autocast("cpu", dtype=torch.bfloat16), \
                torch.autograd.graph.saved_tensors_hooks(pack, unpack):
            loss = model(**inputs).loss
    finally:
        for handle in handles:
            handle.remove()
    del loss
    kinds: dict[str, dict] = {}
    for block in blocks:
        row = kinds.setdefault(block["kind"], {"blocks": 0, "saved_bytes": 0, "input_bytes": 0, "max_saved_bytes": 0})
        row["blocks"] += 1
        row["saved_bytes"] += block["bytes"]
        row["input_bytes"] += block["input"]
        row["max_saved_bytes"] = max(row["max_saved_bytes"], block["bytes"])
    largest = max((b["bytes"] for b in blocks), default=0)
    saved = sum(b["bytes"] for b in blocks)
    inputs_kept = sum(b["input"] for b in blocks)
    return {"sequence_tokens": int(batch["input_ids"].shape[1]),
            "logits_positions": int(inputs.get("logits_to_keep", batch["input_ids"].shape[1])),
            "outside_blocks_bytes": outside["bytes"],
            "blocks": kinds, "without_checkpointing_bytes": outside["bytes"] + saved,
            "with_checkpointing_bytes": outside["bytes"] + inputs_kept + largest}


def train_callbacks(record: dict):
    from transformers import TrainerCallback

    class Measure(TrainerCallback):
        """Seconds per optimizer step, memory after the model is ready, and the activation measurement."""

        def on_train_begin(self, args, state, control, **kwargs):
            record["rss_before_first_step_gb"] = gb(rss_now())
            record["step_seconds"], record["step_cpu_seconds"] = [], []

        def on_step_begin(self, args, state, control, **kwargs):
            self.started, self.cpu = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kwargs):
            record["step_seconds"].append(round(time.perf_counter() - self.started, 2))
            # CPU seconds of this process (all its threads): less sensitive than wall time to other jobs' load
            record["step_cpu_seconds"].append(round(time.process_time() - self.cpu, 2))

        def on_train_end(self, args, state, control, model=None, train_dataloader=None, **kwargs):
            record["rss_after_steps_gb"] = gb(rss_now())
            record["lora_parameter_dtypes"] = sorted({str(p.dtype).removeprefix("torch.")
                                                      for p in model.parameters() if p.requires_grad})
            started = time.perf_counter()
            record["activations"] = saved_activations(model, next(iter(train_dataloader)))
            record["activations"]["seconds"] = round(time.perf_counter() - started, 1)

    return [Measure()]


def phase_train(name: str, model_dir: Path, run: Path, paths: dict, seed: int) -> dict:
    from vlm_train.train import TrainConfig, train

    out = run / "train"
    shutil.rmtree(out, ignore_errors=True)
    config = TrainConfig(model=str(model_dir), train=str(paths["train"]), out=str(out), epochs=1, dtype="bf16",
                         gradient_checkpointing=True, seed=seed)   # the rest is the study's recipe (defaults)
    record: dict = {}
    started = time.perf_counter()
    stats = train(config, callbacks=train_callbacks(record))
    settings = json.loads((out / "train_config.json").read_text())
    steps = record["step_seconds"]
    timed = steps[1:] if len(steps) > 1 else steps   # the first step also warms up kernels and allocator
    shutil.rmtree(out / "checkpoints", ignore_errors=True)   # the adapter in best/ is what evaluate needs
    return {"recipe": {k: settings[k] for k in ("lora_r", "lora_alpha", "lora_dropout", "lr", "batch_size",
                                                 "dtype_resolved", "gradient_checkpointing", "lora_modules")},
            "lora_targets": settings["lora_targets"], "trainable_parameters": settings["trainable_parameters"],
            "total_parameters": settings["total_parameters"], "train_steps": len(steps),
            "seconds_per_step": round(statistics.mean(timed), 2),
            "cpu_seconds_per_step": round(statistics.mean(record["step_cpu_seconds"][-len(timed):]), 2), **record,
            "train_loss": [e.get("train_loss") for e in stats["epochs"]],
            "wall_seconds": round(time.perf_counter() - started, 1)}


# --- evaluation and probe (child processes) ----------------------------------------------------------------

def adapter_of(run: Path) -> str | None:
    best = run / "train" / "best"
    return str(best) if (best / "adapter_config.json").is_file() else None


def phase_evaluate(model_dir: Path, run: Path, paths: dict, batch_size: int) -> dict:
    from evaluation.runner import RunSettings, run_evaluation

    out = run / "evaluate"
    shutil.rmtree(out, ignore_errors=True)
    adapter = adapter_of(run)
    started = time.perf_counter()
    run_evaluation(RunSettings(model=str(model_dir), questions=str(paths["evaluate"]), out=str(out), adapter=adapter,
                               batch_size=batch_size, max_new_tokens=MAX_NEW_TOKENS, device="cpu", dtype="bf16"),
                   progress=False)
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    info = json.loads((out / "run.json").read_text())
    return {"answered": len(rows), "parsed": sum(r["parsed"] is not None for r in rows), "adapter": adapter is not None,
            "batch_size": batch_size, "max_new_tokens": MAX_NEW_TOKENS,
            "generate_seconds": info.get("generate_seconds"), "questions_per_second": info.get("questions_per_second"),
            "example_answer": rows[0]["raw"][:80] if rows else None,
            "wall_seconds": round(time.perf_counter() - started, 1)}


def phase_probe(model_dir: Path, run: Path, paths: dict) -> dict:
    from evaluation.probe import CACHE, ProbeSettings, run_probe

    out = run / "probe"
    shutil.rmtree(out, ignore_errors=True)
    adapter = adapter_of(run)
    started = time.perf_counter()
    result = run_probe(ProbeSettings(model=str(model_dir), questions=str(paths["probe"]), out=str(out),
                                     adapter=adapter, batch_size=2, device="cpu", dtype="bf16", task="area9",
                                     folds=2, seed=0), progress=False)
    return {"records": result["n"], "layers": len(result["layers"]), "adapter": adapter is not None,
            "probe_bytes_per_record": round((out / CACHE).stat().st_size / result["n"]),
            "wall_seconds": round(time.perf_counter() - started, 1)}


def child(args) -> None:
    """One phase of one model, in this process; its result as JSON in --result."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    work = Path(args.work)
    paths = {k: work / "data" / "questions" / f"real-size-{k}.jsonl" for k in ("train", "evaluate", "probe")}
    run = work / slug(args.model)
    model_dir = run / "model"
    if args.child == "build":
        result = phase_build(args.model, model_dir, paths, args.seed, args.shrink)
    elif args.child == "train":
        result = phase_train(args.model, model_dir, run, paths, args.seed)
    elif args.child == "evaluate":
        result = phase_evaluate(model_dir, run, paths, args.eval_batch_size)
    else:
        result = phase_probe(model_dir, run, paths)
    Path(args.result).write_text(json.dumps(result, indent=2))


# --- the parent: phases, memory guard, results -------------------------------------------------------------

def slug(name: str) -> str:
    return name.replace("/", "_")


def run_phase(phase: str, name: str, args, log_dir: Path) -> dict:
    """Run one phase in a child process; its result, wall time and peak RSS (the child's ru_maxrss). The child
    (and only it) is killed if the machine's available memory falls below --reserve-gb."""
    result_file = log_dir / f"{phase}.json"
    result_file.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", phase, "--model", name, "--work", str(args.work),
           "--result", str(result_file), "--seed", str(args.seed), "--eval-batch-size", str(args.eval_batch_size),
           *(["--shrink"] if args.shrink else [])]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    reserve = args.reserve_gb * GIB
    started = time.perf_counter()
    load_start = os.getloadavg()[0]
    lowest = mem_available()
    stopped = None
    with open(log_dir / f"{phase}.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            available = mem_available()
            lowest = min(lowest, available)
            elapsed = time.perf_counter() - started
            if stopped is None and (available < reserve or elapsed > args.phase_timeout):
                stopped = (f"killed: the machine's available memory fell to {gb(available)} GB (reserve "
                           f"{args.reserve_gb} GB)" if available < reserve else
                           f"killed: ran past --phase-timeout {args.phase_timeout} s")
                os.kill(proc.pid, signal.SIGKILL)
            time.sleep(0.25)
        proc.returncode = os.waitstatus_to_exitcode(status)
    out = {"seconds": round(time.perf_counter() - started, 1), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
           "load_average_1min": [round(load_start, 2), round(os.getloadavg()[0], 2)],
           "peak_rss_gb": gb(usage.ru_maxrss * 1024), "lowest_available_gb": gb(lowest), "returncode": proc.returncode}
    if stopped:
        out["stopped"] = stopped
    if proc.returncode == 0 and result_file.is_file():
        out.update(json.loads(result_file.read_text()))
    elif not stopped:
        tail = (log_dir / f"{phase}.log").read_text(errors="replace").strip().splitlines()[-12:]
        out["error"] = "\n".join(tail)
    return out


def phase_need(phase: str, parameters: int) -> float:
    """Bytes a phase is expected to need: the bf16 weights plus a margin (interpreter, torch, one 1 GB shard while
    saving; activations, LoRA and optimizer state, logits while training; a batch while answering)."""
    # measured on Qwen2.5-VL-3B (peak RSS over the bf16 weights): build 1.3, train 1.9, evaluate and probe 1.0 GiB
    margin = {"build": 1.5, "train": 2.5, "evaluate": 1.5, "probe": 1.5}[phase]
    return parameters * 2 + margin * GIB


def run_model(name: str, args) -> dict:
    from vlm_train.families import FAMILIES

    spec = MODELS[name]
    entry: dict = {"hub_id": spec["hub_id"], "family": spec["family"]}
    if spec["family"] not in FAMILIES:
        return {**entry, "skipped": f"the {spec['family']} family is not in vlm_train/families.py (the run's "
                                    f"processor classes, chat template and LoRA targets come from there)"}
    parameters = count_parameters(name, args.shrink)
    entry["parameters"] = parameters
    run = args.work / slug(name)
    run.mkdir(parents=True, exist_ok=True)
    phases: dict[str, dict] = {}
    for phase in PHASES:
        if phase != "build" and "parameters" not in phases["build"]:
            phases[phase] = {"skipped": "no checkpoint (build did not finish)"}
            continue
        need, available = phase_need(phase, parameters), mem_available()
        if available - args.reserve_gb * GIB < need:
            phases[phase] = {"skipped": f"needs about {gb(need)} GB (bf16 weights {gb(parameters * 2)} GB + margin); "
                                        f"{gb(available)} GB available, {args.reserve_gb} GB kept in reserve"}
            continue
        print(f"[real-size] {name}: {phase} (available {gb(available)} GB)", file=sys.stderr, flush=True)
        phases[phase] = run_phase(phase, name, args, run)
        if "error" in phases[phase]:
            print(f"[real-size] {name}: {phase} failed:\n{phases[phase]['error']}", file=sys.stderr, flush=True)
    if not args.keep:
        shutil.rmtree(run / "model", ignore_errors=True)
    return {**entry, **summary(phases), "phases": phases, "published_parameters": spec["published_parameters"],
            "config_sources": spec["sources"], "config_not_found": spec["not_found"]}


def summary(phases: dict) -> dict:
    """The issue's headline figures from the phases that ran (None where a phase did not)."""
    build, train, evaluate, probe = (phases.get(p, {}) for p in PHASES)
    peaks = [p["peak_rss_gb"] for p in phases.values() if p.get("peak_rss_gb") is not None]
    return {"trainable_parameters": train.get("trainable_parameters"), "image_tokens": build.get("image_tokens"),
            "train_steps": train.get("train_steps"), "seconds_per_step": train.get("seconds_per_step"),
            "cpu_seconds_per_step": train.get("cpu_seconds_per_step"),
            "answered": evaluate.get("answered"), "probe_bytes_per_record": probe.get("probe_bytes_per_record"),
            "peak_rss_gb": max(peaks) if peaks else None,
            "peak_rss_gb_by_phase": {k: v.get("peak_rss_gb") for k, v in phases.items()},
            "not_run": {k: v.get("skipped") or v.get("stopped") or v.get("error") for k, v in phases.items()
                        if "skipped" in v or "stopped" in v or "error" in v}}


# --- derived: GPU memory per model -------------------------------------------------------------------------

FORMULAS = {
    "weights_gib": "parameters x 2 bytes (bf16; the trainer and --dtype bf16 load the model in bf16)",
    "lora_state_gib": "trainable (LoRA) parameters x 4 tensors (weight, gradient, AdamW exp_avg and exp_avg_sq) x "
                      "bytes of their dtype (peft keeps adapters in fp32: 16 bytes a parameter)",
    "activations_*_gib": "measured: bytes autograd saves for backward for one civet example (336x336 image, its "
                         "templated question and answer), counted on the CPU in bf16 autocast: without checkpointing "
                         "all of them; with checkpointing the bytes saved outside checkpointed blocks + every "
                         "block's input + the largest block (recomputed one at a time). Linear in the batch size",
    "logits_gib": "logits positions x vocabulary x 8 bytes (the fp32 logits and their gradient, alive together in "
                  "the loss's backward); the trainer projects only the answer's positions (logits_to_keep)",
    "train_gib": "weights + LoRA state + batch x (activations + logits) + 1 GiB CUDA overhead (assumed)",
    "evaluate_gib": "weights + batch x KV cache (2 x layers x kv heads x head dim x (sequence + 16 new tokens) x "
                    "2 bytes) + 1 GiB CUDA overhead (assumed); batch 8, evaluate's default",
    "gpu": "the smallest card whose usable memory (GPUS in bench/real_size.py) holds train_gc_b1_gib",
}


def derived(models: dict) -> dict:
    rows = {}
    for name, m in models.items():
        build = m.get("phases", {}).get("build", {})
        train = m.get("phases", {}).get("train", {})
        if "parameters" not in build:
            continue
        params, dims, seq = build["parameters"], build["text"], build["sequence_tokens"]
        row = {"parameters_b": round(params / 1e9, 2), "weights_gib": round(params * 2 / GIB, 2),
               "image_tokens": build["image_tokens"], "sequence_tokens": seq}
        kv = 2 * dims["layers"] * dims["kv_heads"] * dims["head_dim"] * (seq + MAX_NEW_TOKENS) * 2
        row["evaluate_b8_gib"] = round((params * 2 + 8 * kv) / GIB + CUDA_OVERHEAD_GIB, 2)
        act = train.get("activations")
        if act:
            lora_bytes = 4 * {"float32": 4, "bfloat16": 2}[train["lora_parameter_dtypes"][0]]
            logits = act["logits_positions"] * dims["vocab"] * 8
            row.update(
                trainable_parameters_m=round(train["trainable_parameters"] / 1e6, 1),
                lora_state_gib=round(train["trainable_parameters"] * lora_bytes / GIB, 2),
                activations_gc_gib=round(act["with_checkpointing_bytes"] / GIB, 3),
                activations_no_gc_gib=round(act["without_checkpointing_bytes"] / GIB, 3),
                activations_gc_bytes_per_token=round(act["with_checkpointing_bytes"] / seq),
                activations_no_gc_bytes_per_token=round(act["without_checkpointing_bytes"] / seq),
                logits_gib=round(logits / GIB, 3))
            base = params * 2 + train["trainable_parameters"] * lora_bytes + CUDA_OVERHEAD_GIB * GIB
            for tag, key in (("gc", "with_checkpointing_bytes"), ("no_gc", "without_checkpointing_bytes")):
                per_example = act[key] + logits
                row[f"train_{tag}_b1_gib"] = round((base + per_example) / GIB, 2)
                row[f"train_{tag}_b8_gib"] = round((base + 8 * per_example) / GIB, 2)
            row["gpu"] = next((card for card, usable in GPUS if usable >= row["train_gc_b1_gib"]), "more than one GPU")
        rows[name] = row
    return {"per_model": rows, "formulas": FORMULAS, "gpus_usable_gib": dict(GPUS),
            "cuda_overhead_gib": CUDA_OVERHEAD_GIB}


# --- main --------------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS),
                        help="comma-separated names of bench/real_size_configs.py")
    parser.add_argument("--steps", type=int, default=2, help="training steps (records, batch 1, one epoch)")
    parser.add_argument("--questions", type=int, default=2, help="questions evaluate answers")
    parser.add_argument("--probe-records", type=int, default=4, help="records probed (two per answer, 2 folds)")
    parser.add_argument("--eval-batch-size", type=int, default=1)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "real-size")
    parser.add_argument("--reserve-gb", type=float, default=1.5,
                        help="memory left to the rest of the machine: a phase that would go below it is skipped or "
                             "killed")
    parser.add_argument("--phase-timeout", type=int, default=1800, help="seconds before a phase is killed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the checkpoints (15-17 GB for a 7-8B model)")
    parser.add_argument("--shrink", action="store_true", help="two layers a tower: a quick check of the script")
    parser.add_argument("--child", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"--models: unknown {unknown} (expected some of {list(MODELS)})")
    args.work = args.work.resolve()
    started = time.perf_counter()
    prepare_data(args.work, args.steps, args.questions, args.probe_records)
    models = {}
    for name in names:
        models[name] = run_model(name, args)
        (args.work / "partial.json").write_text(json.dumps(models, indent=2))
    print(json.dumps({
        "bench": "real_size", "shrunk": args.shrink, "device": "cpu", "dtype": "bf16",
        "units": "*_gb and *_gib: GiB (2**30 bytes); parameters: counts; seconds: wall time on the shared machine",
        "steps": args.steps, "questions": args.questions, "probe_records": args.probe_records,
        "eval_batch_size": args.eval_batch_size, "reserve_gb": args.reserve_gb,
        "memory_total_gb": gb(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")),
        "models": models, "derived": derived(models), "wall_seconds": round(time.perf_counter() - started, 1),
        **provenance(seed=args.seed),
    }, indent=2))


if __name__ == "__main__":
    main()
