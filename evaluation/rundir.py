"""A run folder's layout, shared by the runner, the scorer and the report: its file names, the readers of
what it holds, and the name a run goes by. Imports nothing else of evaluation, so score and report both use
it without importing each other's names.

A run folder holds `predictions.jsonl` (one object per question: id, task, raw, parsed, answer, correct,
plus whatever the runner adds), `metrics.json` (written by the scorer) and `run.json` (model, adapter,
questions file, settings; written by the runner, may be absent).
"""
from __future__ import annotations

import json
from pathlib import Path

from blender_scenes.errors import InputError
from blender_scenes.files import read_json

PREDICTIONS = "predictions.jsonl"
METRICS = "metrics.json"
RUN = "run.json"


def read_predictions(path: str | Path) -> list[dict]:
    """Prediction rows; each needs a string `id` and a `raw` answer (string or null)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found (expected a run's predictions, {PREDICTIONS})")
    rows: list[dict] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object per line")
            if not isinstance(row.get("id"), str):
                raise InputError(f"{path}:{lineno}: field 'id': expected a string question id")
            if "raw" not in row or not (row["raw"] is None or isinstance(row["raw"], str)):
                raise InputError(f"{path}:{lineno}: field 'raw': expected the model's text (string or null)")
            if row["id"] in seen:
                raise InputError(f"{path}:{lineno}: field 'id': {row['id']!r} appears twice")
            seen.add(row["id"])
            rows.append(row)
    return rows


def read_run_info(path: Path) -> dict | None:
    """run.json as the runner wrote it, or None when the run has none."""
    if not path.is_file():
        return None
    info = read_json(path, "the runner's run settings")
    if not isinstance(info, dict):
        raise InputError(f"{path}: expected a JSON object (the runner's run settings)")
    return info


def read_scored_run(run_dir: str | Path) -> dict:
    """A scored run: its metrics.json and its predictions (id -> correct, task)."""
    run_dir = Path(run_dir)
    metrics_path = run_dir / METRICS
    metrics = read_json(metrics_path, "a scored run; run `scenes2real score` first")
    if not isinstance(metrics, dict) or not isinstance(metrics.get("tasks"), dict):
        raise InputError(f"{metrics_path}: field 'tasks': missing (expected the output of `scenes2real score`)")
    correct: dict[str, dict[str, bool]] = {}
    for row in read_predictions(run_dir / PREDICTIONS):
        if not isinstance(row.get("correct"), bool) or not isinstance(row.get("task"), str):
            raise InputError(f"{run_dir / PREDICTIONS}: question {row['id']!r}: fields 'task'/'correct' "
                             "missing (expected a scored run; run `scenes2real score` first)")
        correct.setdefault(row["task"], {})[row["id"]] = row["correct"]
    return {"dir": run_dir, "name": run_dir.resolve().name, "metrics": metrics, "correct": correct}


def short_name(model_or_path) -> str:
    """'Qwen2.5-VL-3B-Instruct' from a Hugging Face id or a checkpoint folder's path."""
    return Path(str(model_or_path).rstrip("/")).name


def run_title(run_dir: Path, run_info: dict | None) -> str:
    """`model + adapter` as the run's settings name them, else the run folder's name."""
    if run_info and run_info.get("model"):
        adapter = run_info.get("adapter")
        return short_name(run_info["model"]) + (f" + {short_name(adapter)}" if adapter else "")
    return run_dir.resolve().name
