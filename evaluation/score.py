"""Scoring a run directory: re-parse every raw answer, rewrite predictions, write metrics and heatmaps.

The run folder's files and their readers are in `rundir.py`; the heatmaps are drawn by `report.py`, which
never imports this module. Runs are expensive and parsers improve, so `score_run` can be re-run on an old
run at any time. No bpy, no torch.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from blender_scenes.errors import InputError
from blender_scenes.files import atomic_write_json
from blender_scenes.labels import ALL_TASKS, AREAS, LABELS, area_of_box
from blender_scenes.questions import QuestionRecord, read_questions, write_jsonl

from .metrics import accuracy_by_area9, option_class, task_labels, task_metrics
from .parse import parse_answer
from .report import write_heatmap
from .rundir import METRICS, PREDICTIONS, RUN, read_predictions, read_run_info, run_title

UNPARSEABLE_EXAMPLES = 20


def prediction_row(record: QuestionRecord, raw: str | None, **extra: Any) -> dict:
    """One line of predictions.jsonl for a model's raw answer to `record` (parsed with the current parser)."""
    parsed = parse_answer(raw or "", record.task, record.options)
    return {"id": record.id, "task": record.task, "raw": raw, "parsed": parsed,
            "answer": record.answer, "correct": parsed == record.answer, **extra}


def _questions_by_id(questions_path: Path) -> dict[str, QuestionRecord]:
    by_id: dict[str, QuestionRecord] = {}
    for record in read_questions(questions_path):
        if record.id in by_id:
            raise InputError(f"{questions_path}: field 'id': {record.id!r} appears twice")
        _check_answer(record, questions_path)
        by_id[record.id] = record
    return by_id


def _check_answer(record: QuestionRecord, questions_path: Path) -> None:
    """A record's answer must be one of its task's labels; a depth answer, one of its two object names."""
    where = f"{questions_path}: question {record.id!r}"
    if record.task == "mc":
        return   # read_questions checked its options and answer (questions.mc_problem)
    if record.task == "depth":
        if len(record.options) != 2 or len(set(record.options)) != 2:
            raise InputError(f"{where}: field 'options': expected the two objects' names, got {record.options!r}")
        if record.answer not in record.options:
            raise InputError(f"{where}: field 'answer': {record.answer!r} is not one of its options")
    elif record.answer not in LABELS[record.task]:
        raise InputError(f"{where}: field 'answer': {record.answer!r} is not a label of task {record.task!r}")


def rescore_rows(rows: list[dict], by_id: dict[str, QuestionRecord], predictions_path: Path,
                 questions_path: Path) -> list[dict]:
    """Rows with `task`, `answer`, `parsed`, `correct` recomputed from the question records."""
    out = []
    for row in rows:
        record = by_id.get(row["id"])
        if record is None:
            raise InputError(f"{predictions_path}: field 'id': {row['id']!r} is not a question of "
                             f"{questions_path} (expected the question file the run answered)")
        out.append({**row, **prediction_row(record, row["raw"])})
    return out


def true_area(record: QuestionRecord) -> str | None:
    """The nine-way area of a question's target, when its record says it (area label, or box + image size)."""
    target = record.target
    for key in ("area_label", "area"):
        if target.get(key) in AREAS:
            return target[key]
    bbox, width, height = target.get("bbox"), target.get("image_width"), target.get("image_height")
    if isinstance(bbox, list) and len(bbox) == 4 and width and height:
        return area_of_box(bbox, width, height)
    return None


def run_metrics(rows: list[dict], by_id: dict[str, QuestionRecord] | None = None, bootstrap: int = 1000,
                seed: int = 0) -> dict[str, dict]:
    """Per-task metrics of scored rows, tasks in their usual order. Three-way tasks also get accuracy per
    true nine-way area when every target's area is known from the question file. Depth rows are counted by
    option position (first / second said), which needs the question records."""
    by_task: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_task[row["task"]].append(row)
    out = {}
    for task in (t for t in ALL_TASKS if t in by_task):
        task_rows = by_task[task]
        pairs = [(r["answer"], r["parsed"]) for r in task_rows]
        labels = None
        if task in ("depth", "mc"):   # classes are the options' positions
            if by_id is None:
                raise ValueError(f"{task} metrics need the question records (their options)")
            labels = task_labels(task, max(len(by_id[r["id"]].options) for r in task_rows))
            pairs = [(option_class(a, by_id[r["id"]].options, labels), option_class(p, by_id[r["id"]].options, labels))
                     for r, (a, p) in zip(task_rows, pairs)]
        out[task] = task_metrics(pairs, task, bootstrap, seed, labels)
        if task in ("horizontal", "vertical") and by_id:
            areas = [true_area(by_id[r["id"]]) for r in task_rows]
            if all(areas):
                out[task].update(accuracy_by_area9(zip(areas, (r["correct"] for r in task_rows))))
    return out


def benchmark_metrics(rows: list[dict], by_id: dict[str, QuestionRecord]) -> dict[str, dict]:
    """Accuracy per public benchmark the questions came from (a record's `benchmark`: {name, categories}), per
    value of each of its categories (VSR relation and meta-category, CV-Bench task, type and source, ...), and
    the benchmark's own headline score where it defines one (`official`)."""
    out: dict[str, dict] = {}
    for row in rows:
        bench = (by_id[row["id"]].model_extra or {}).get("benchmark")
        if not isinstance(bench, dict) or not isinstance(bench.get("name"), str):
            continue
        entry = out.setdefault(bench["name"], {"n": 0, "correct": 0, "categories": {}})
        entry["n"] += 1
        entry["correct"] += bool(row["correct"])
        for key, value in sorted((bench.get("categories") or {}).items()):
            cell = entry["categories"].setdefault(key, {}).setdefault(str(value), {"n": 0, "correct": 0})
            cell["n"] += 1
            cell["correct"] += bool(row["correct"])
    for name, entry in out.items():
        entry["accuracy"] = entry["correct"] / entry["n"]
        for values in entry["categories"].values():
            for cell in values.values():
                cell["accuracy"] = cell["correct"] / cell["n"]
        entry["official"] = official_score(name, entry)
    return out


def official_score(name: str, entry: dict) -> dict | None:
    """A benchmark's published headline: CV-Bench = 1/2 (1/2 (ADE20K + COCO) + Omni3D), accuracies per source
    (its dataset card); BLINK = the mean of its sub-task accuracies. None where the parts are not all there."""
    def accuracy(key: str, value: str) -> float | None:
        cell = entry["categories"].get(key, {}).get(value)
        return cell["accuracy"] if cell else None

    if name == "cvbench":
        ade, coco, omni = (accuracy("source", s) for s in ("ADE20K", "COCO", "Omni3D"))
        if None in (ade, coco, omni):
            return {"name": "CV-Bench accuracy", "value": None,
                    "why": "needs questions of every source: ADE20K and COCO (2D) and Omni3D (3D)"}
        return {"name": "CV-Bench accuracy", "value": ((ade + coco) / 2 + omni) / 2,
                "formula": "((ADE20K + COCO) / 2 + Omni3D) / 2, accuracy per source"}
    if name == "blink":
        tasks = entry["categories"].get("sub_task", {})
        if tasks:
            return {"name": "BLINK accuracy (mean over sub-tasks)",
                    "value": sum(c["accuracy"] for c in tasks.values()) / len(tasks)}
    return None


def score_run(run_dir: str | Path, questions_path: str | Path, bootstrap: int = 1000, seed: int = 0,
              heatmaps: bool = True) -> dict:
    """Re-parse a run's raw answers, rewrite predictions.jsonl, write metrics.json and heatmap PNGs.

    Returns the metrics written. Unparseable answers count as wrong and are listed; a prediction whose
    id is not in the question file is an InputError (the run answered another file)."""
    run_dir, questions_path = Path(run_dir), Path(questions_path)
    predictions_path = run_dir / PREDICTIONS
    rows = read_predictions(predictions_path)
    by_id = _questions_by_id(questions_path)
    rows = rescore_rows(rows, by_id, predictions_path, questions_path)
    write_jsonl(predictions_path, rows)

    tasks = run_metrics(rows, by_id, bootstrap, seed)
    correct = sum(row["correct"] for row in rows)
    failed = [row for row in rows if row.get("error") is not None]
    unparseable = [row for row in rows if row["parsed"] is None and row.get("error") is None]
    run_info = read_run_info(run_dir / RUN)
    metrics = {
        "run": run_info,
        "run_dir": str(run_dir),
        "questions": str(questions_path),
        "n_questions": len(by_id),
        "n_predictions": len(rows),
        "missing": len(by_id) - len(rows),
        "correct": correct,
        "accuracy": correct / len(rows) if rows else None,
        "unparseable": len(unparseable),
        "unparseable_examples": [{"id": r["id"], "raw": r["raw"]} for r in unparseable[:UNPARSEABLE_EXAMPLES]],
        # questions whose request failed after its retries: kept as rows, counted wrong, retried by a re-run
        "errors": len(failed),
        "error_examples": [{"id": r["id"], "error": r["error"]} for r in failed[:UNPARSEABLE_EXAMPLES]],
        "tasks": tasks,
        **({"benchmarks": benchmarks} if (benchmarks := benchmark_metrics(rows, by_id)) else {}),
        "heatmaps": {},
    }
    if heatmaps and tasks:
        title = run_title(run_dir, run_info)
        for task, task_result in tasks.items():
            name = f"heatmap_{task}.png"
            write_heatmap(task_result, run_dir / name, title=f"{title} ({task})")
            metrics["heatmaps"][task] = name
    atomic_write_json(run_dir / METRICS, metrics, indent=2)
    return metrics
