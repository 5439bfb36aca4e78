"""Commands of the evaluation package: questions coco/vsr/cvbench/whatsup/blink, evaluate, score, compare, probe."""
from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import click

from blender_scenes.errors import InputError
from blender_scenes.labels import RELATION_TASKS, TASKS

from .options import dtype_option, max_image_pixels_option, real_stream, trust_remote_code_option, writes, wrote

# the names of evaluation.backends.BACKENDS (a test says so), without importing the backends here
BACKEND_NAMES = ("transformers", "openai")

# Library modules are imported inside the commands, so that `scenes2real --help` starts in ~0.7 s, not ~1.7 s.
# COCO boxes answer the area tasks and the 2D relations; depth needs a depth pass (refused with its reason).
# The same tuple as evaluation.coco.COCO_TASKS (a test says so), without importing pycocotools here.
COCO_TASK_NAMES = TASKS + tuple(t for t in RELATION_TASKS if t != "depth")


def _count(n: int, noun: str) -> str:
    """'1 question', '4,952 questions'."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


@click.group("questions")
def questions_group() -> None:
    """Build position and relation question files (JSONL question records)."""


@questions_group.command("coco")
@click.option("--instances", required=True, type=click.Path(dir_okay=False),
              help="COCO instances file (instances_val2017.json, or DATASET/annotations/SPLIT.json).")
@click.option("--images", type=click.Path(file_okay=False), default=None,
              help="Folder of the images; joined to each file_name (else file_name as is). Every image that gets "
                   "questions must be there (else one error line, nothing written).")
@click.option("--skip-missing", is_flag=True,
              help="With --images: leave out the objects of images not in the folder (counted in the summary).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Question file to write (.jsonl).")
@click.option("--tasks", default="area9", show_default=True,
              help=f"Comma-separated tasks: {', '.join(COCO_TASK_NAMES)} (relations: pairs of objects).")
@click.option("--split", default=None, help="Split name of the records (default: val/train/test from the file name).")
@click.option("--exclude-crowd", is_flag=True,
              help="Drop crowd boxes, and categories with a crowd annotation in the image.")
@click.option("--min-area", type=float, default=None,
              help="Drop boxes (targets and anchors) smaller than this fraction of the image area (w*h / (W*H)).")
@click.option("--ambiguity-margin", type=float, default=None,
              help="Drop boxes whose centre is within this fraction of the image side of a third line.")
@click.option("--balance-areas", is_flag=True, help="Subsample targets to equal counts per area (seeded).")
@click.option("--balance-answers", is_flag=True,
              help="Relation tasks: subsample to equal counts per answer, per task (seeded).")
@click.option("--limit", type=int, default=None,
              help="At most N targets (the same for every area task) and N questions per relation task; "
                   "a seeded sample that keeps --balance-* (N // k per class, the remainder to seeded classes).")
@click.option("--attributes", default="",
              help="Annotation keys that describe the target before its category, e.g. 'color' for our "
                   "rendered datasets ('Where is the red star?'); uniqueness is then per description.")
@click.option("--source", type=click.Choice(["coco", "synthetic"]), default="coco", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@writes("out")
def questions_coco_cmd(instances, images, skip_missing, out, tasks, split, exclude_crowd, min_area, ambiguity_margin,
                       balance_areas, balance_answers, limit, attributes, source, seed):
    """Position and relation questions from a COCO instances file (the study's rule: one instance per
    category; relations between pairs of such objects)."""
    from evaluation.coco import CocoQuestionSettings, write_coco_questions

    settings = CocoQuestionSettings(
        tasks=[t.strip() for t in tasks.split(",") if t.strip()], split=split, exclude_crowd=exclude_crowd,
        min_area=min_area, ambiguity_margin=ambiguity_margin, balance_areas=balance_areas,
        balance_answers=balance_answers, limit=limit,
        attributes=[a.strip() for a in attributes.split(",") if a.strip()], source=source, seed=seed)
    if skip_missing and images is None:
        raise InputError("--skip-missing: drops the records whose image is not in --images; give --images too")
    missing = "keep" if images is None else "skip" if skip_missing else "error"
    with _busy(f"reading {instances} and writing the questions", Path(instances)):
        summary = write_coco_questions(instances, out, images=images, settings=settings, missing=missing)
    click.echo(json.dumps(summary, indent=2))
    dropped = (f"; left out {_count(summary['images_missing'], 'image')} missing from {images} "
               f"({_count(summary['dropped']['missing_image'], 'target')})" if summary["images_missing"] else "")
    wrote(f"{_count(sum(summary['questions'].values()), 'question')} to {out}{dropped}")


@contextlib.contextmanager
def _busy(what: str, source: Path, large: int = 20 * 2**20):
    """A spinner on stderr while a large file (train2017's instances: 450 MB, ~12 s) is read in one go."""
    try:
        size = source.stat().st_size
    except OSError:
        size = 0
    if size < large or not real_stream(sys.stderr):
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(f"{what} ({size / 2**20:,.0f} MB)"):
        yield


def _benchmark_command(name: str, help_text: str, file_help: str, images_help: str, seed: bool = False):
    """`questions NAME --file F [--images DIR] --out Q [--skip-missing]`: one released file of a public benchmark
    as `mc` question records (evaluation.benchmarks)."""
    def command(file, images, out, skip_missing, seed=0):
        from evaluation.benchmarks import write_benchmark_questions

        summary = write_benchmark_questions(name, file, out, images=images, skip_missing=skip_missing, seed=seed)
        click.echo(json.dumps(summary, indent=2))
        pictures = (f" and {_count(summary['images_written'], 'image')} to "
                    f"{Path(out).resolve().parent / 'images' / name}" if summary["images_written"] else "")
        dropped = (f"; left out {_count(summary['dropped_missing_image'], 'row')} without their image"
                   if summary["dropped_missing_image"] else "")
        wrote(f"{_count(summary['records'], 'question')} to {out}{pictures}{dropped}")

    command.__doc__ = help_text
    command = writes("out")(command)
    if seed:
        command = click.option("--seed", type=int, default=0, show_default=True,
                               help="Shuffles the options (correct position balanced over the file).")(command)
    command = click.option("--skip-missing", is_flag=True,
                           help="Keep the rows whose image is there (the summary counts those dropped).")(command)
    command = click.option("--out", required=True, type=click.Path(dir_okay=False),
                           help="Question file to write (.jsonl).")(command)
    command = click.option("--images", type=click.Path(file_okay=False), default=None, help=images_help)(command)
    command = click.option("--file", required=True, type=click.Path(dir_okay=False), help=file_help)(command)
    return questions_group.command(name)(command)


questions_vsr_cmd = _benchmark_command(
    "vsr", "True/false questions from a VSR split file (label 1 = the caption is true of the image).",
    "data/splits/random/test.jsonl (or dev, train; zeroshot/...).",
    "Folder of the COCO 2017 images the rows name (train2017 and val2017 merged, as VSR's data/README.md).")
questions_cvbench_cmd = _benchmark_command(
    "cvbench", "Multiple-choice questions from CV-Bench test_2d / test_3d (.jsonl or .parquet with images).",
    "test_2d.jsonl, test_3d.jsonl, test_2d.parquet or test_3d.parquet.",
    "jsonl: the folder holding img/ (rows' `filename`); parquet: not needed (images are written beside --out).")
questions_whatsup_cmd = _benchmark_command(
    "whatsup", "Caption-choice questions from a What'sUp file (the first caption is the correct one; shuffled).",
    "controlled_images_dataset.json, controlled_clevr_dataset.json, coco_qa_{one,two}_obj.json, "
    "vg_qa_{one,two}_obj.json.",
    "What'sUp's data/ folder (controlled_images/, controlled_clevr/, val2017/, vg_images/), or the images' folder.",
    seed=True)
questions_blink_cmd = _benchmark_command(
    "blink", "Multiple-choice questions from a BLINK val parquet file (images embedded; test answers are hidden).",
    "e.g. Spatial_Relation/val-00000-of-00001.parquet or Relative_Depth/val-00000-of-00001.parquet.",
    "Not needed: the images are in the file and are written beside --out.")


@click.command("score")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--questions", "questions_path", required=True, type=click.Path(dir_okay=False),
              help="The question file the run answered.")
@click.option("--bootstrap", type=int, default=1000, show_default=True, help="Bootstrap resamples for the intervals.")
@click.option("--seed", type=int, default=0, show_default=True)
@writes("run_dir")
def score_cmd(run_dir, questions_path, bootstrap, seed):
    """Re-parse a run's answers with the current parser; write metrics.json and heatmaps. The shards of a job
    array (evaluate --shard) are merged into predictions.jsonl first."""
    from blender_scenes.questions import read_questions
    from evaluation.rundir import merge_run
    from evaluation.score import score_run

    merged = merge_run(run_dir, [record.id for record in read_questions(questions_path)])
    if merged["shards"]:
        click.echo(f"merged {len(merged['shards'])} shard files into {run_dir}/predictions.jsonl "
                   f"({merged['rows']} rows, {merged.get('missing', 0)} questions missing)", err=True)
    metrics = score_run(run_dir, questions_path, bootstrap=bootstrap, seed=seed)
    click.echo(json.dumps({
        "run_dir": metrics["run_dir"], "n_predictions": metrics["n_predictions"], "missing": metrics["missing"],
        "errors": metrics["errors"], "accuracy": metrics["accuracy"], "unparseable": metrics["unparseable"],
        "tasks": {t: {k: r[k] for k in ("n", "accuracy", "accuracy_ci95", "macro_f1", "unparseable_rate")}
                  for t, r in metrics["tasks"].items()},
        **({"benchmarks": {name: {"n": b["n"], "accuracy": b["accuracy"], "official": b["official"]}
                           for name, b in metrics["benchmarks"].items()}} if metrics.get("benchmarks") else {}),
    }, indent=2))
    wrote(f"metrics.json, predictions.jsonl (re-parsed) and {_heatmaps(metrics)} in {run_dir}")


def _heatmaps(metrics: dict) -> str:
    """The heatmap files of a scored run (one per label task), as a phrase."""
    names = list(metrics.get("heatmaps", {}).values())
    return ", ".join(names) if names else "no heatmap (no label task)"


@click.command("compare")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for comparison.md, comparison.json and heatmaps.png.")
@writes("out_dir")
def compare_cmd(run_dirs, out_dir):
    """Compare scored runs: metrics table, heatmaps side by side, exact McNemar tests per pair."""
    from evaluation.report import compare_runs

    compare_runs(list(run_dirs), out_dir)
    click.echo((Path(out_dir) / "comparison.md").read_text(), nl=False)
    wrote(f"{out_dir}/comparison.md, comparison.json and heatmaps.png")


def evaluation_shard_job(kwargs) -> str | None:
    """The lock's job key that the tasks of one job array share: same settings that change the answers, same
    shard count (a task of another array, or a plain run, is another writer)."""
    import hashlib

    from blender_scenes.batch import parse_shard

    n = parse_shard(kwargs.get("shard"))[1]
    if n == 1:
        return None
    def spelled(key):   # a path however it is spelled (relative, absolute), as run.json compares them
        value = kwargs.get(key)
        return str(Path(value).resolve()) if value and key in ("model", "adapter", "questions_path") and \
            Path(value).exists() else str(value)

    keys = ("model", "adapter", "questions_path", "backend", "base_url", "max_new_tokens", "limit", "dtype")
    digest = hashlib.sha256(json.dumps([spelled(k) for k in keys]).encode()).hexdigest()[:16]
    return f"evaluate-shards:{digest}:{n}"


@click.command("evaluate")
@click.option("--model", required=True,
              help="A checkpoint folder or a Hugging Face model id (any AutoModelForImageTextToText); with "
                   "--backend openai, the model name the server serves.")
@click.option("--adapter", type=click.Path(file_okay=False), default=None,
              help="A peft (LoRA) adapter folder to apply (transformers backend).")
@click.option("--questions", "questions_path", required=True, type=click.Path(dir_okay=False),
              help="Question file (.jsonl question records).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Run folder: predictions.jsonl, run.json, metrics.json (an existing one is resumed).")
@click.option("--backend", type=click.Choice(BACKEND_NAMES), default="transformers", show_default=True,
              help="transformers: the model in this process; openai: any OpenAI-compatible server (vLLM, SGLang, "
                   "lmdeploy, transformers serve, hosted APIs) at --base-url.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Questions per generate call (transformers backend).")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=16, show_default=True,
              help="Longest answer, in tokens (max_tokens of a server request).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Answer only the first N questions.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Transformers backend; under torchrun each rank takes the GPU of its LOCAL_RANK.")
@dtype_option
@trust_remote_code_option
@max_image_pixels_option
@click.option("--base-url", default=None, help="openai backend: the server's API root, e.g. http://localhost:8000/v1.")
@click.option("--api-key-env", metavar="VAR", default=None,
              help="openai backend: the environment variable holding the key (run.json records the name only).")
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True,
              help="openai backend: requests in flight.")
@click.option("--request-timeout", type=click.FloatRange(min=0, min_open=True), default=120.0, show_default=True,
              help="openai backend: seconds per request attempt.")
@click.option("--max-retries", type=click.IntRange(min=0), default=5, show_default=True,
              help="openai backend: retries of a request after 408/429/5xx, a timeout or a dropped connection, "
                   "with exponential backoff; then the question is an error row (a re-run retries it).")
@click.option("--shard", metavar="K/N", default=None,
              help="One task of a job array: answer the questions at positions K, K+N, ... into shards/; "
                   "`scenes2real score OUT --questions Q` merges the shards when all have ended.")
@writes("out", job=evaluation_shard_job)
def evaluate_cmd(model, adapter, questions_path, out, backend, batch_size, max_new_tokens, limit, device, dtype,
                 trust_remote_code, max_image_pixels, base_url, api_key_env, concurrency, request_timeout,
                 max_retries, shard):
    """Answer a question file with a VLM (greedy), resume after a kill, then score the run.

    In one process, as the ranks of `torchrun --nproc_per_node N -m scenes2real evaluate ...` (each answers
    its share, rank 0 merges and scores), or as one shard of a job array (--shard)."""
    from evaluation.runner import RunSettings, run_evaluation

    settings = RunSettings(model=model, adapter=adapter, questions=questions_path, out=out, batch_size=batch_size,
                           max_new_tokens=max_new_tokens, limit=limit, device=device, dtype=dtype,
                           trust_remote_code=trust_remote_code, max_image_pixels=max_image_pixels, backend=backend,
                           base_url=base_url, api_key_env=api_key_env, concurrency=concurrency,
                           request_timeout=request_timeout, max_retries=max_retries, shard=shard)
    metrics = run_evaluation(settings)
    if metrics is None:
        if shard:
            click.echo(f"shard {shard} done in {out}/shards; when every shard is, run: scenes2real score {out} "
                       f"--questions {questions_path}")
        return
    click.echo(json.dumps({k: metrics[k] for k in ("run_dir", "n_predictions", "missing", "errors", "correct",
                                                    "accuracy", "unparseable")}, indent=2))
    if metrics["errors"]:
        click.echo(f"note: {metrics['errors']} questions failed after their retries (rows with 'error', counted "
                   f"wrong); run the same command again to retry them", err=True)
    wrote(f"predictions.jsonl, run.json, metrics.json and {_heatmaps(metrics)} in {out}")


@click.command("probe")
@click.argument("probe_dirs", nargs=-1, type=click.Path(file_okay=False))
@click.option("--compare", is_flag=True, help="Draw the probe folders given as arguments on one figure.")
@click.option("--model", default=None,
              help="A checkpoint folder or a Hugging Face model id (any AutoModelForImageTextToText).")
@click.option("--adapter", type=click.Path(file_okay=False), default=None,
              help="A peft (LoRA) adapter folder to apply.")
@click.option("--questions", "questions_path", type=click.Path(dir_okay=False), default=None,
              help="Question file (.jsonl question records).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for probe.json, probe.png and the cached hidden states (compare.png with --compare).")
@click.option("--task", default="area9", show_default=True, help="The records of this task are probed.")
@click.option("--limit", type=int, default=None, help="Probe only the task's first N records.")
@click.option("--folds", type=int, default=3, show_default=True, help="Stratified cross-validation folds.")
@click.option("--seed", type=int, default=0, show_default=True, help="Folds, control labels and bootstrap.")
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@dtype_option
@trust_remote_code_option
@max_image_pixels_option
@writes("out")
def probe_cmd(probe_dirs, compare, model, adapter, questions_path, out, task, limit, folds, seed, batch_size,
              device, dtype, trust_remote_code, max_image_pixels):
    """Where the answer becomes linearly decodable: a linear probe per layer of the language model, on the
    hidden state of the final prompt token; or, with --compare, several probe folders on one figure.

    Under `torchrun --nproc_per_node N -m scenes2real probe ...` each rank computes the hidden states of its
    share of the records and rank 0 fits."""
    if compare:
        from evaluation.probe import compare_probes

        if model or adapter or questions_path:
            raise InputError("probe --compare: expected probe folders only (not --model, --adapter, --questions)")

        compare_probes(list(probe_dirs), out)
        click.echo((Path(out) / "compare.md").read_text(), nl=False)
        wrote(f"compare.md, compare.json and compare.png in {out}")
        return
    if probe_dirs or not (model and questions_path):
        raise InputError("probe: expected --model and --questions (or --compare with probe folders)")
    from evaluation.probe import ProbeSettings, run_probe

    result = run_probe(ProbeSettings(model=model, adapter=adapter, questions=questions_path, out=out, task=task,
                                     limit=limit, folds=folds, seed=seed, batch_size=batch_size, device=device,
                                     dtype=dtype, trust_remote_code=trust_remote_code,
                                     max_image_pixels=max_image_pixels))
    if result is None:   # a torchrun rank other than 0: rank 0 fits and writes
        return
    best = max(result["layers"], key=lambda s: s["accuracy"])
    click.echo(json.dumps({k: result[k] for k in ("task", "n", "chance", "hidden_states")}
                          | {"best_layer": best["layer"], "best_accuracy": best["accuracy"],
                             "layers": len(result["layers"]), "out": out}, indent=2))
    wrote(f"probe.json, probe.png and the cached hidden states in {out}")


COMMANDS: list = [questions_group, score_cmd, compare_cmd, evaluate_cmd, probe_cmd]
