"""The GPU check, as one prepared run on one H100/H200 (<= 9 minutes): writes one JSON with

- `eval`: the runner's throughput and peak memory on a random-weight Qwen2.5-VL-3B in bf16 (bench/eval_gpu.py);
- `train`: the LoRA trainer's throughput and peak memory at growing batch sizes (bench/train_gpu.py);
- `oom_halving`: the runner's batch halving, forced once: the first generate call of a batch of 4 raises
  CUDA out-of-memory, and the answers must equal those of an unforced run;
- `dtype_auto`: what `--dtype auto` picks on this GPU (bf16 expected);
- `cycles_gpu`: a Cycles render of 8 `clevr` scenes on the GPU (render.device = "gpu"), seconds per scene;
- `roster`: the study's models at their published size (bench/real_size.py, random weights, bf16) through train
  (LoRA r=32 on both towers, gradient checkpointing), evaluate (batch 8) and probe on the GPU: seconds per
  training step, questions per second, peak memory; `--roster-models` chooses them (default: the 3B, which fits
  the check's time; all five on an H200 with `--roster-models all`);
plus the command, versions and machine. `bench/gpu_check.sh` runs it; on a CPU, `--smoke` runs every part at
toy size (tiny model, 1 scene) to check the script itself.

    python bench/gpu_check.py --out bench/results/gpu_check.json
    python bench/gpu_check.py --smoke --out /tmp/gpu_check_smoke.json

It needs the project installed with its `train` extra (torch, transformers, peft) in the Python it runs under
(`PYTHON=... bash bench/gpu_check.sh`).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.provenance import provenance  # noqa: E402


def _json_of(cmd: list[str], timeout: int) -> dict:
    """Run a bench script; its last stdout JSON object, or the error."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *cmd], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    out = {"command": " ".join(["python", *cmd]), "seconds": round(time.perf_counter() - t0, 1)}
    if proc.returncode:
        return {**out, "error": proc.stderr[-2000:]}
    text = proc.stdout.strip()
    return {**out, "result": json.loads(text[text.index("{"):])}


def oom_halving(smoke: bool) -> dict:
    """Force one CUDA out-of-memory in the runner's batch and check the halved batches answer the same."""
    import torch

    from evaluation.backends import transformers_backend as runner
    from vlm_train.tiny import write_tiny_model

    device = "cpu" if smoke else "cuda"
    with tempfile.TemporaryDirectory() as tmp:
        path = write_tiny_model("qwen2_5_vl", Path(tmp) / "m", seed=0)
        model, processor = runner.load_model(str(path), None, device, torch.float32)
        from PIL import Image
        images = [Image.new("RGB", (64, 64), (40 * i, 0, 0)) for i in range(4)]
        prompts = [f"Where is the red square? {i}" for i in range(4)]
        config = runner.greedy_config(model, processor, 4)
        plain = runner.generate_fitting(model, processor, prompts, images, config)
        calls, real = [], runner.generate_answers

        def failing_once(model_, processor_, prompts_, images_, config_):
            calls.append(len(prompts_))
            if len(calls) == 1:
                raise torch.cuda.OutOfMemoryError("forced by bench/gpu_check.py")
            return real(model_, processor_, prompts_, images_, config_)

        runner.generate_answers = failing_once
        try:
            halved = runner.generate_fitting(model, processor, prompts, images, config)
        finally:
            runner.generate_answers = real
    return {"batch_sizes_tried": calls, "same_answers": halved == plain, "ok": calls[:3] == [4, 2, 2]}


def dtype_auto() -> dict:
    from vlm_train.checkpoint import pick_device, resolve_dtype

    device = pick_device("auto")
    name, dtype = resolve_dtype("auto", device)
    return {"device": device, "dtype": name, "torch_dtype": str(dtype), "ok": device != "cuda" or name == "bf16"}


def cycles_gpu(smoke: bool) -> dict:
    """8 clevr scenes rendered by Cycles on the GPU (the preset as shipped, render.device switched)."""
    from blender_scenes.batch import run
    from blender_scenes.config import load_preset, parse_design

    cfg = load_preset("clevr").model_dump(mode="json")
    cfg["render"]["device"] = "cpu" if smoke else "gpu"
    design = parse_design(cfg, "clevr (gpu_check)")
    n = 1 if smoke else 8
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        stats = run(design, out, splits=["train"], limit=n, progress=False)
        wall = time.perf_counter() - t0
    return {"scenes": stats.scenes, "seconds": round(wall, 2), "engine_seconds": round(stats.engine_seconds, 2),
            "seconds_per_scene": round(wall / max(1, stats.scenes), 2), "device": cfg["render"]["device"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--smoke", action="store_true", help="toy sizes on the CPU: checks the script, measures nothing")
    ap.add_argument("--roster-models", default="Qwen2.5-VL-3B-Instruct",
                    help="comma-separated names of bench/real_size_configs.py, or 'all'")
    ap.add_argument("--roster-timeout", type=int, default=300)
    args = ap.parse_args()
    size = ["--size", "tiny", "--device", "cpu"] if args.smoke else []
    result = {"bench": "gpu_check", "smoke": args.smoke}
    result["eval"] = _json_of(["bench/eval_gpu.py", *size, "--questions", "8" if args.smoke else "64",
                               *(["--dtype", "fp32"] if args.smoke else [])], 240)
    result["train"] = _json_of(["bench/train_gpu.py", *size, "--steps", "3" if args.smoke else "8",
                                "--max-batch", "2" if args.smoke else "16"], 240)
    roster = [] if args.roster_models == "all" else ["--models", args.roster_models]
    with tempfile.TemporaryDirectory() as work:
        result["roster"] = _json_of(["bench/real_size.py", *roster, "--work", work,
                                     *(["--shrink", "--steps", "1", "--questions", "1"] if args.smoke else
                                       ["--steps", "8", "--questions", "16", "--eval-batch-size", "8"])],
                                    args.roster_timeout)
    for name, part in (("oom_halving", lambda: oom_halving(args.smoke)), ("dtype_auto", dtype_auto),
                       ("cycles_gpu", lambda: cycles_gpu(args.smoke))):
        try:
            result[name] = part()
        except Exception as err:   # noqa: BLE001  one part failing must not lose the others' figures
            result[name] = {"error": f"{type(err).__name__}: {err}"}
    result.update(provenance(seed=0))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
