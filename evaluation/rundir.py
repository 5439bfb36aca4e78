"""A run folder's layout, shared by the runner, the scorer and the report: its file names, the readers of
what it holds, and the name a run goes by. Imports nothing else of evaluation, so score and report both use
it without importing each other's names.

A run folder holds `predictions.jsonl` (one object per question: id, task, raw, parsed, answer, correct,
plus `error` for a question that failed after its retries), `metrics.json` (written by the scorer) and
`run.json` (backend, model, adapter, questions file, settings, status; written by the runner, may be absent).
While the parts of a data-parallel run or a job array are answering, each writes `shards/K-of-N.jsonl` and
`shards/K-of-N.run.json`; `merge_run` folds them into predictions.jsonl and run.json.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

from blender_scenes.errors import InputError
from blender_scenes.files import atomic_write_json, atomic_write_text, read_json

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
                raise InputError(f"{path}:{lineno}:{err.colno}: not valid JSON ({err.msg}); expected a row of a "
                                 "run, one JSON object per line") from None
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


# --- shards: the rows of one process of a data-parallel run or a job array ----------------------------------

SHARDS = "shards"   # RUN/shards/K-of-N.jsonl (rows) and K-of-N.run.json (that process's settings and status)


def shard_name(k: int, n: int) -> str:
    return f"{k}-of-{n}"


def shard_files(run_dir: Path) -> list[Path]:
    """The shard row files of a run folder (any shard count: a killed run may be resumed with another)."""
    folder = Path(run_dir) / SHARDS
    return sorted(folder.glob("*-of-*.jsonl")) if folder.is_dir() else []


def read_rows_tolerant(path: Path) -> list[dict]:
    """Rows of a predictions or shard file that its writer may still be appending to: a last line without its
    newline (being written, or cut by a kill) is skipped; any other line must be a prediction object."""
    if not path.is_file():
        return []
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(keepends=True), 1):
        if not line.endswith("\n"):
            break
        try:
            row = json.loads(line)
        except ValueError:
            raise InputError(f"{path}:{lineno}: not valid JSON (expected one prediction per line; remove the run "
                             f"folder to start again)") from None
        if not (isinstance(row, dict) and isinstance(row.get("id"), str)):
            raise InputError(f"{path}:{lineno}: field 'id': expected a prediction object with a string id")
        rows.append(row)
    return rows


def best_rows(rows) -> dict[str, dict]:
    """One row per id: an answered row beats an error row (a retry that worked), later beats earlier."""
    best: dict[str, dict] = {}
    for row in rows:
        if row.get("error") is None or best.get(row["id"], {}).get("error") is not None:
            best[row["id"]] = row
        else:
            best.setdefault(row["id"], row)
    return best


# what each part of a run records for itself; run.json sums or lists them
_PART_KEYS = ("status", "stopped_by", "part", "answered_now", "errors", "wall_seconds", "questions_per_second",
              "device_used")


def merge_run(run_dir: str | Path, ids: list[str]) -> dict:
    """Put a run's rows (predictions.jsonl and every shard's) into predictions.jsonl, one per id in question order
    (ids the file does not list last), fold the shards' settings into run.json with the run's status (complete
    when every question it covers has an answered row), then remove the shards. Returns what was merged."""
    run_dir = Path(run_dir)
    predictions, files = run_dir / PREDICTIONS, shard_files(run_dir)
    infos = sorted((run_dir / SHARDS).glob("*.run.json"), key=lambda p: p.stat().st_mtime) \
        if (run_dir / SHARDS).is_dir() else []
    if not predictions.is_file() and not files:
        return {"rows": 0, "shards": []}
    rows = best_rows([row for path in [predictions, *files] for row in read_rows_tolerant(path)])
    order = {row_id: index for index, row_id in enumerate(ids)}
    merged = sorted(rows.values(), key=lambda row: order.get(row["id"], len(order)))
    atomic_write_text(predictions, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in merged))
    run = read_run_info(run_dir / RUN) or {}
    if infos:
        parts = [read_json(path, "a shard's settings") for path in infos]
        for part in parts:   # merged under the run's lock, so no part still runs: one that says so was killed
            if part.get("status") == "running":
                part["status"] = "killed"
        run = {k: v for k, v in {**parts[-1], **run}.items() if k not in _PART_KEYS}
        # parts merged by an earlier `score` (an array resubmitted in pieces) stay listed, each under its name
        run["parts"] = {**(run.get("parts") or {}),
                        **{path.name.removesuffix(".run.json"): {k: part.get(k) for k in _PART_KEYS if k in part}
                           for path, part in zip(infos, parts)}}
        run["answered_now"] = sum(part.get("answered_now") or 0 for part in run["parts"].values())
        run["wall_seconds"] = max((part.get("wall_seconds") or 0 for part in run["parts"].values()), default=0)
    summary = {"rows": len(merged), "shards": [path.name for path in files]}
    if run:
        limit = run.get("limit")
        wanted = ids[:limit] if isinstance(limit, int) else ids
        summary["errors"] = sum(rows[i].get("error") is not None for i in wanted if i in rows)
        summary["missing"] = sum(i not in rows for i in wanted)
        run.update(status="complete" if not summary["errors"] and not summary["missing"] else "incomplete",
                   errors=summary["errors"], missing=summary["missing"])
        atomic_write_json(run_dir / RUN, run, indent=2)
    for path in [*files, *infos]:
        path.unlink()
    with contextlib.suppress(OSError):
        (run_dir / SHARDS).rmdir()
    return summary
