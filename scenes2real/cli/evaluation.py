"""Commands of the evaluation package: questions coco, evaluate, score, compare, probe."""
from __future__ import annotations

import json
from pathlib import Path

import click

from blender_scenes.labels import RELATION_TASKS, TASKS

from .options import dtype_option, max_image_pixels_option, trust_remote_code_option, writes

# Library modules are imported inside the commands, so that `scenes2real --help` starts in ~0.7 s, not ~1.7 s.
# COCO boxes answer the area tasks and the 2D relations; depth needs a depth pass (refused with its reason).
# The same tuple as evaluation.coco.COCO_TASKS (a test says so), without importing pycocotools here.
COCO_TASK_NAMES = TASKS + tuple(t for t in RELATION_TASKS if t != "depth")

@click.group("questions")
def questions_group() -> None:
    """Build position and relation question files (JSONL question records)."""


@questions_group.command("coco")
@click.option("--instances", required=True, type=click.Path(dir_okay=False),
              help="COCO instances file (instances_val2017.json, or DATASET/annotations/SPLIT.json).")
@click.option("--images", type=click.Path(file_okay=False), default=None,
              help="Folder of the images; joined to each file_name (else file_name as is).")
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
def questions_coco_cmd(instances, images, out, tasks, split, exclude_crowd, min_area, ambiguity_margin,
                       balance_areas, balance_answers, limit, attributes, source, seed):
    """Position and relation questions from a COCO instances file (the study's rule: one instance per
    category; relations between pairs of such objects)."""
    from evaluation.coco import CocoQuestionSettings, write_coco_questions

    settings = CocoQuestionSettings(
        tasks=[t.strip() for t in tasks.split(",") if t.strip()], split=split, exclude_crowd=exclude_crowd,
        min_area=min_area, ambiguity_margin=ambiguity_margin, balance_areas=balance_areas,
        balance_answers=balance_answers, limit=limit,
        attributes=[a.strip() for a in attributes.split(",") if a.strip()], source=source, seed=seed)
    summary = write_coco_questions(instances, out, images=images, settings=settings)
    click.echo(json.dumps(summary, indent=2))


@click.command("score")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--questions", "questions_path", required=True, type=click.Path(dir_okay=False),
              help="The question file the run answered.")
@click.option("--bootstrap", type=int, default=1000, show_default=True, help="Bootstrap resamples for the intervals.")
@click.option("--seed", type=int, default=0, show_default=True)
@writes("run_dir")
def score_cmd(run_dir, questions_path, bootstrap, seed):
    """Re-parse a run's answers with the current parser; write metrics.json and heatmaps."""
    from evaluation.score import score_run

    metrics = score_run(run_dir, questions_path, bootstrap=bootstrap, seed=seed)
    click.echo(json.dumps({
        "run_dir": metrics["run_dir"], "n_predictions": metrics["n_predictions"], "missing": metrics["missing"],
        "accuracy": metrics["accuracy"], "unparseable": metrics["unparseable"],
        "tasks": {t: {k: r[k] for k in ("n", "accuracy", "accuracy_ci95", "macro_f1", "unparseable_rate")}
                  for t, r in metrics["tasks"].items()},
    }, indent=2))


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


@click.command("evaluate")
@click.option("--model", required=True,
              help="A checkpoint folder or a Hugging Face model id (any AutoModelForImageTextToText).")
@click.option("--adapter", type=click.Path(file_okay=False), default=None,
              help="A peft (LoRA) adapter folder to apply.")
@click.option("--questions", "questions_path", required=True, type=click.Path(dir_okay=False),
              help="Question file (.jsonl question records).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Run folder: predictions.jsonl, run.json, metrics.json (an existing one is resumed).")
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--max-new-tokens", type=int, default=16, show_default=True)
@click.option("--limit", type=int, default=None, help="Answer only the first N questions.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@dtype_option
@trust_remote_code_option
@max_image_pixels_option
@writes("out")
def evaluate_cmd(model, adapter, questions_path, out, batch_size, max_new_tokens, limit, device, dtype,
                 trust_remote_code, max_image_pixels):
    """Answer a question file with a VLM (greedy, batched), resume after a kill, then score the run."""
    from evaluation.runner import RunSettings, run_evaluation

    settings = RunSettings(model=model, adapter=adapter, questions=questions_path, out=out, batch_size=batch_size,
                           max_new_tokens=max_new_tokens, limit=limit, device=device, dtype=dtype,
                           trust_remote_code=trust_remote_code, max_image_pixels=max_image_pixels)
    metrics = run_evaluation(settings)
    click.echo(json.dumps({k: metrics[k] for k in ("run_dir", "n_predictions", "missing", "correct", "accuracy",
                                                    "unparseable")}, indent=2))


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
    hidden state of the final prompt token; or, with --compare, several probe folders on one figure."""
    from blender_scenes.errors import InputError

    if compare:
        from evaluation.probe import compare_probes

        if model or adapter or questions_path:
            raise InputError("probe --compare: expected probe folders only (not --model, --adapter, --questions)")

        compare_probes(list(probe_dirs), out)
        click.echo((Path(out) / "compare.md").read_text(), nl=False)
        return
    if probe_dirs or not (model and questions_path):
        raise InputError("probe: expected --model and --questions (or --compare with probe folders)")
    from evaluation.probe import ProbeSettings, run_probe

    result = run_probe(ProbeSettings(model=model, adapter=adapter, questions=questions_path, out=out, task=task,
                                     limit=limit, folds=folds, seed=seed, batch_size=batch_size, device=device,
                                     dtype=dtype, trust_remote_code=trust_remote_code,
                                     max_image_pixels=max_image_pixels))
    best = max(result["layers"], key=lambda s: s["accuracy"])
    click.echo(json.dumps({k: result[k] for k in ("task", "n", "chance", "hidden_states")}
                          | {"best_layer": best["layer"], "best_accuracy": best["accuracy"],
                             "layers": len(result["layers"]), "out": out}, indent=2))


COMMANDS: list = [questions_group, score_cmd, compare_cmd, evaluate_cmd, probe_cmd]
