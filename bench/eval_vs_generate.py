"""Evaluation throughput against a bare `model.generate` loop: our `evaluate` vs the few lines a user would write.

Both sides answer the same civet questions with the same checkpoint (the SmolVLM-256M-size model of
`bench/train_vs_trl.py`: published widths and depths, random weights, one 512 px tile per image), greedy, in
left-padded batches of the same size, with the same `max_new_tokens`, each run in its own process:
- **ours**: `evaluation.runner.run_evaluation` (the function behind `scenes2real evaluate`): input checks (every
  image decoded, the weights fingerprinted, every prompt's length), the model, the answers appended to
  `predictions.jsonl` batch by batch (fsync'd), then `score_run` (parsing, metrics with bootstrap intervals,
  heatmap PNGs);
- **bare**: the processor and the model from the checkpoint, then for each batch the images opened, the prompts
  built by the shared prompt builder (`record_prompt`, `user_turn`) inside the processor's chat template, one
  `processor(...)` call, `model.generate(do_sample=False)`, `batch_decode` of the new tokens.
The order alternates over `--repeat` pairs. Figures per run: questions/s over the whole library call (ours:
`run_evaluation`, checks and scoring included; bare: model load + loop) and over the answering loop alone (ours:
the runner's `_answer`, timed from outside: the span of `run.json`'s `questions_per_second`; bare: the loop),
each also per CPU second, the process's wall seconds and peak RSS (`wait4`), and the raw answers, which must be
identical on both sides (and across runs). One torch thread per side by default, as in `bench/train_vs_trl.py`.

    python bench/eval_vs_generate.py                       # 3 pairs, 24 questions, batch 8 (~9-11 min on 2 cores)
    python bench/eval_vs_generate.py --questions 32 --repeat 2 --threads 0
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.train_vs_trl import ENV, build_smolvlm_256m, render_civet, run_worker, spread, versions  # noqa: E402


def worker_ours(cfg: dict) -> dict:
    # what the bare side imports before its clock starts (ours imports them inside `run_evaluation`)
    import torch  # noqa: F401
    from transformers import AutoModelForImageTextToText, AutoProcessor  # noqa: F401

    from evaluation import runner
    from evaluation.rundir import read_predictions

    loop = {}
    answer = runner._answer

    def timed_answer(*args, **kwargs):   # the answering loop's wall and CPU seconds; nothing else changes
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            return answer(*args, **kwargs)
        finally:
            loop.update(wall=time.perf_counter() - started, cpu=time.process_time() - cpu_started)

    runner._answer = timed_answer
    out = Path(cfg["out"])
    shutil.rmtree(out, ignore_errors=True)
    started, cpu_started = time.perf_counter(), time.process_time()
    metrics = runner.run_evaluation(runner.RunSettings(model=cfg["model"], questions=cfg["questions"], out=str(out),
                                                       batch_size=cfg["batch_size"],
                                                       max_new_tokens=cfg["max_new_tokens"]), progress=False)
    call, call_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    answers = {row["id"]: row["raw"] for row in read_predictions(out / "predictions.jsonl")}
    run = json.loads((out / "run.json").read_text())
    return {**_figures(len(answers), call, call_cpu, loop["wall"], loop["cpu"]),
            "run_json_questions_per_second": run["questions_per_second"], "accuracy": metrics["accuracy"],
            "answers": answers}


def worker_bare(cfg: dict) -> dict:
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from blender_scenes.prompts import record_prompt, user_turn
    from blender_scenes.questions import read_questions, resolve_image

    started, cpu_started = time.perf_counter(), time.process_time()
    records = read_questions(cfg["questions"])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    processor = AutoProcessor.from_pretrained(cfg["model"])
    processor.tokenizer.padding_side = "left"
    model = AutoModelForImageTextToText.from_pretrained(cfg["model"], dtype=dtype).to(device).eval()
    loop_started, loop_cpu_started = time.perf_counter(), time.process_time()
    answers = {}
    size = cfg["batch_size"]
    for start in range(0, len(records), size):
        batch = records[start:start + size]
        images = []
        for record in batch:
            with Image.open(resolve_image(record, cfg["questions"])) as image:
                images.append([image.convert("RGB")])
        texts = [processor.apply_chat_template(user_turn(record_prompt(r)), add_generation_prompt=True, tokenize=False)
                 for r in batch]
        inputs = processor(text=texts, images=images, padding=True, return_tensors="pt").to(device, dtype=dtype)
        with torch.inference_mode():
            output = model.generate(**inputs, do_sample=False, num_beams=1, max_new_tokens=cfg["max_new_tokens"])
        new = processor.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        answers.update({r.id: text.strip() for r, text in zip(batch, new)})
    ended, cpu_ended = time.perf_counter(), time.process_time()
    return {**_figures(len(answers), ended - started, cpu_ended - cpu_started, ended - loop_started,
                       cpu_ended - loop_cpu_started), "answers": answers}


def _figures(n: int, call: float, call_cpu: float, loop: float, loop_cpu: float) -> dict:
    return {"questions": n, "call_s": round(call, 2), "call_cpu_s": round(call_cpu, 2), "loop_s": round(loop, 2),
            "loop_cpu_s": round(loop_cpu, 2), "questions_per_s": round(n / call, 5),
            "questions_per_cpu_s": round(n / call_cpu, 5), "loop_questions_per_s": round(n / loop, 5),
            "loop_questions_per_cpu_s": round(n / loop_cpu, 5)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "eval-vs-generate")
    parser.add_argument("--model", type=Path, default=ROOT / "runs" / "train-vs-trl" / "model",
                        help="the bench model's folder (built there when missing)")
    parser.add_argument("--repeat", type=int, default=3, help="pairs of runs (ours, bare), the order alternating")
    parser.add_argument("--questions", type=int, default=24, help="civet test questions (the first N scenes)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of both sides (OMP_NUM_THREADS; 0: torch's default, one per core); one by "
                             "default, as in bench/train_vs_trl.py")
    parser.add_argument("--worker", choices=["ours", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        os.environ.update(ENV)
        figures = (worker_ours if args.worker == "ours" else worker_bare)(json.loads(args.config))
        args.result.write_text(json.dumps(figures))
        return

    from bench.provenance import provenance

    started = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    questions = render_civet(args.work / "data", "test", args.questions)
    model_info = build_smolvlm_256m(args.model)
    common = dict(model=str(args.model), questions=str(questions), batch_size=args.batch_size,
                  max_new_tokens=args.max_new_tokens)
    pairs = []
    for r in range(args.repeat):
        order = ("ours", "bare") if r % 2 == 0 else ("bare", "ours")
        pair = {"order": list(order)}
        for side in order:
            pair[side] = run_worker(Path(__file__), side, {**common, "out": str(args.work / f"run-{side}")},
                                    args.work, args.threads)
            shown = {k: v for k, v in pair[side].items() if k != "answers"}
            print(json.dumps({"pair": r, "side": side, **shown}), file=sys.stderr, flush=True)
        pairs.append(pair)

    answers = [p[side]["answers"] for p in pairs for side in ("ours", "bare")]
    identical = all(a == answers[0] for a in answers)
    first = answers[0]
    for p in pairs:
        for side in ("ours", "bare"):
            p[side]["answers_identical_to_first_run"] = p[side].pop("answers") == first

    def ratios(key: str) -> dict:
        return spread([p["ours"][key] / p["bare"][key] for p in pairs])

    speeds = ("questions_per_s", "questions_per_cpu_s", "loop_questions_per_s", "loop_questions_per_cpu_s")

    def side(name: str) -> dict:
        return {key: spread([p[name][key] for p in pairs], 4) for key in
                (*speeds, "call_s", "call_cpu_s", "loop_s", "loop_cpu_s", "process_wall_s", "peak_rss_mb")}

    ratio = {key: ratios(key) for key in speeds}
    print(json.dumps({
        "goal": "ours >= 0.95x the bare loop's questions/s (median of the pairs' ratios), raw answers identical",
        "met": {**{key: value["median"] >= 0.95 for key, value in ratio.items()}, "answers_identical": identical},
        "ratio_ours_over_bare": {**ratio, "process_wall_s": ratios("process_wall_s"),
                                 "peak_rss": ratios("peak_rss_mb")},
        "ours": side("ours"), "bare": side("bare"),
        "answers_identical": identical,
        "answers": {"n": len(first), "distinct": len(set(first.values())),
                    "empty": sum(not a for a in first.values()), "examples": dict(list(first.items())[:3])},
        "setup": {"questions": args.questions, "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens,
                  "decoding": "greedy, left padding", "threads": args.threads or "torch's default",
                  "dtype": "auto (fp32 on the CPU)",
                  "data": f"civet preset, test split, first {args.questions} scenes (area9), 336 px",
                  "model": model_info},
        "pairs": pairs,
        "wall_s": round(time.perf_counter() - started, 1),
        "provenance": {**provenance(None), "more_versions": versions()},
    }, indent=2))


if __name__ == "__main__":
    main()
