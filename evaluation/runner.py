"""The runner: answer a question file into a run folder, with any backend (`evaluation/backends/`), in one
process, as torchrun ranks, or as the shards of a job array (`evaluation/parallel.py`).

What every backend shares lives here: reading and checking the question records (ids unique, images within the
pixel limit and decodable, before any model or server work), the prompt builder (`record_prompt`), resume by
id, the rows file each process appends to (`predictions.jsonl`, or `shards/K-of-N.jsonl` for a part),
`run.json`, and the merge into `predictions.jsonl` in question order before `score_run` parses and scores.
A killed run resumes where it stopped, with any number of processes; rows written batch by batch survive it.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass
from itertools import chain
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from blender_scenes.errors import InputError
from blender_scenes.files import atomic_write_json, atomic_write_text, read_json
from blender_scenes.images import DEFAULT_MAX_IMAGE_PIXELS
from blender_scenes.prompts import record_prompt
from blender_scenes.questions import QuestionRecord, read_questions, resolve_image
from vlm_train.images import check_image

from .backends import BACKENDS, Question, make_backend
from .parallel import barrier, leave, this_part
from .rundir import (PREDICTIONS, RUN, SHARDS, best_rows, merge_run, read_rows_tolerant, read_run_info,
                     shard_files, shard_name)
from .score import prediction_row, score_run

# run.json fields that must match for a run directory to be resumed (they change the answers); a run.json
# written before backends existed has no `backend` and was the transformers backend's
_RESUME_KEYS = ("backend", "model", "base_url", "adapter", "questions", "max_new_tokens", "dtype", "weights")
_RESUME_DEFAULTS = {"backend": "transformers"}
_WEIGHT_FILES = ("*.safetensors", "*.bin", "*.pt", "*.pth")
_LOCAL_ONLY = ("adapter", "batch_size", "device", "dtype", "trust_remote_code")   # settings a server ignores
_SERVER_ONLY = ("base_url", "api_key_env", "concurrency", "request_timeout", "max_retries")
_SYNC_SECONDS = 1.0   # rows reach the disk (fsync) at least this often; a killed process loses none either way


@dataclass(frozen=True)
class RunSettings:
    model: str
    questions: str
    out: str
    adapter: str | None = None
    batch_size: int = 8
    max_new_tokens: int = 16
    limit: int | None = None
    device: str = "auto"  # auto | cpu | cuda
    dtype: str = "auto"  # auto | bf16 | fp32
    trust_remote_code: bool = False  # run the checkpoint's own Python files (config.json auto_map)
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    backend: str = "transformers"  # a name of evaluation.backends.BACKENDS
    base_url: str | None = None  # openai: the server, e.g. http://localhost:8000/v1
    api_key_env: str | None = None  # openai: the environment variable that holds the key (never recorded)
    concurrency: int = 4  # openai: requests in flight
    request_timeout: float = 120.0  # openai: seconds per request attempt
    max_retries: int = 5  # openai: retries of a request (429, 5xx, timeouts) with backoff
    shard: str | None = None  # K/N: one task of a job array


# --- inputs, checked before any model work -----------------------------------------------------------------

def load_run_questions(settings: RunSettings) -> list[tuple[QuestionRecord, Path]]:
    """The records to answer (first `limit`), each with its image path; every image must exist, be within the
    pixel limit and decode."""
    questions = read_questions(settings.questions)
    if not questions:
        raise InputError(f"{settings.questions}: no questions (expected at least one question record per line)")
    if settings.limit is not None:
        questions = questions[: settings.limit]
    seen: set[str] = set()
    out = []
    for record in questions:
        if record.id in seen:
            raise InputError(f"{settings.questions}: field 'id': {record.id!r} appears twice (expected unique ids)")
        seen.add(record.id)
        image = resolve_image(record, settings.questions)
        check_image(image, f"{settings.questions}: question {record.id!r}", settings.max_image_pixels)
        out.append((record, image))
    return out


def check_settings(settings: RunSettings) -> None:
    numbers = {"--batch-size": settings.batch_size, "--max-new-tokens": settings.max_new_tokens,
               "--limit": settings.limit, "--concurrency": settings.concurrency}
    for option, value in numbers.items():
        if value is not None and value < 1:
            raise InputError(f"{option}: expected a positive integer, got {value}")
    if settings.backend not in BACKENDS:
        raise InputError(f"--backend {settings.backend}: expected one of {', '.join(BACKENDS)}")
    if settings.backend != "transformers" and settings.adapter:
        raise InputError(f"--adapter with --backend {settings.backend}: the server applies adapters (e.g. vLLM "
                         f"--lora-modules NAME=PATH, then --model NAME), or serve the merged model (merge-adapter)")
    if settings.backend == "transformers" and settings.base_url:
        raise InputError("--base-url: expected --backend openai with it (the transformers backend runs the model "
                         "in this process)")


def check_resumable(mine: dict[str, Any], out: Path) -> None:
    """Refuse to add to a run folder made with other settings (its answers would be mixed): run.json and every
    shard's settings must agree with this run's on what changes the answers."""
    previous = []
    if (out / RUN).is_file() and ((out / PREDICTIONS).is_file() or shard_files(out)):
        previous.append((out / RUN, read_json(out / RUN, "the run's settings; remove the run folder")))
    previous += [(path, read_json(path, "a shard's settings; remove the run folder"))
                 for path in sorted((out / SHARDS).glob("*.run.json"))]
    for path, info in previous:
        for key in _RESUME_KEYS:
            theirs = info.get(key, _RESUME_DEFAULTS.get(key)) if isinstance(info, dict) else None
            if theirs != mine.get(key):
                raise InputError(f"{path}: field '{key}': this run used {theirs!r}, not {mine.get(key)!r} "
                                 f"(expected the same settings to resume; use another --out)")


def run_record(settings: RunSettings) -> dict[str, Any]:
    """The run's settings as run.json records them: paths resolved, the key's variable but never the key, and
    for a local model the fingerprint of its weights."""
    record = asdict(settings)
    for key in ("out", "shard", *(_LOCAL_ONLY if settings.backend != "transformers" else _SERVER_ONLY)):
        record.pop(key)
    record["questions"] = str(Path(settings.questions).resolve())
    if settings.backend != "transformers":
        return record   # --model names what the server serves
    if Path(settings.model).is_dir():
        record["model"] = str(Path(settings.model).resolve())
    if settings.adapter:
        record["adapter"] = str(Path(settings.adapter).resolve())
    # a model retrained into the same folder keeps its path: the weights' fingerprint tells the runs apart
    record["weights"] = {name: weights_fingerprint(Path(path)) for name, path in
                         (("model", settings.model), ("adapter", settings.adapter)) if path and Path(path).is_dir()}
    return record


def weights_fingerprint(folder: Path, blocks: int = 16, block_size: int = 65_536) -> str:
    """sha256 over a folder's weight files: each one's name, size and `blocks` blocks of bytes read at evenly
    spaced offsets (the whole file when it is smaller). Training changes every tensor, so two different sets of
    weights differ in these blocks, while a 15 GB checkpoint is fingerprinted in milliseconds."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for pattern in _WEIGHT_FILES for p in folder.glob(pattern)):
        size = path.stat().st_size
        digest.update(f"{path.name}\0{size}\0".encode())
        with path.open("rb") as fh:
            if size <= blocks * block_size:
                digest.update(fh.read())
                continue
            for i in range(blocks):
                fh.seek(i * (size - block_size) // (blocks - 1))
                digest.update(fh.read(block_size))
    return digest.hexdigest()


# --- resume ------------------------------------------------------------------------------------------------

def completed_rows(rows_file: Path) -> list[dict]:
    """Rows already in this process's own rows file (`read_rows_tolerant`: a last line cut by a kill is dropped),
    one per id; the file is rewritten without the cut line so appends start on a clean line."""
    if not rows_file.is_file():
        return []
    rows = list(best_rows(read_rows_tolerant(rows_file)).values())
    atomic_write_text(rows_file, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return rows


def answered_ids(out: Path, own: Path) -> set[str]:
    """Ids answered by any earlier run or part of this run folder (error rows are not: they are retried)."""
    others = [read_rows_tolerant(path) for path in [out / PREDICTIONS, *shard_files(out)] if path != own]
    rows = best_rows(chain(*others, completed_rows(own)))
    return {row_id for row_id, row in rows.items() if row.get("error") is None}


# --- the run -----------------------------------------------------------------------------------------------

def run_evaluation(settings: RunSettings, progress: bool = True) -> dict | None:
    """Answer the questions of `settings.questions` that this process's part holds into `settings.out`.
    Returns score_run's metrics from the process that merges (one process, or torchrun's rank 0), else None."""
    check_settings(settings)
    part = this_part(settings.shard)
    out = Path(settings.out)
    items = load_run_questions(settings)
    backend = make_backend(settings)   # the transformers backend reads the model's config here
    info = run_record(settings)
    check_resumable(info, out)
    own = out / PREDICTIONS if part.whole else out / SHARDS / f"{shard_name(part.k, part.n)}.jsonl"
    status_file = out / RUN if part.whole else own.with_name(f"{shard_name(part.k, part.n)}.run.json")
    try:
        # torchrun's ranks meet three times: the settings checked, then the parts of a killed data-parallel run
        # folded into predictions.jsonl (by the merging process), then what is done read by every rank, so that
        # no rank reads a file another is changing and all split the same remaining questions
        barrier(part)
        if part.merges and shard_files(out):
            merge_run(out, [record.id for record, _ in items])
        barrier(part)
        done = answered_ids(out, own)
        barrier(part)
        if part.distributed:   # the remaining questions, split evenly by rank
            mine = [item for item in items if item[0].id not in done][part.k::part.n]
            already = 0
        else:                  # a fixed stride of the file, whatever the other tasks have done so far
            mine = items[part.k::part.n]
            already = sum(record.id in done for record, _ in mine)
            mine = [item for item in mine if item[0].id not in done]
        todo = [Question(record, image, record_prompt(record)) for record, image in mine]
        if todo:   # the cheap checks (prompt lengths, the server) before the weights load
            backend.check(todo)
        own.parent.mkdir(parents=True, exist_ok=True)
        if todo:
            info.update(backend.start(), status="running", part=None if part.whole else shard_name(part.k, part.n))
            atomic_write_json(status_file, info, indent=2)
            start = time.perf_counter()
            try:
                errors = _answer(backend, todo, own, already, progress and (part.k == 0 or not part.distributed))
            except BaseException as err:   # a signal, a full disk, a crash: the status says it stopped, and why
                info.update(status="stopped", stopped_by=type(err).__name__)
                with contextlib.suppress(OSError):
                    atomic_write_json(status_file, info, indent=2)
                raise
            wall = time.perf_counter() - start
            info.update(status="complete" if not errors else "incomplete", answered_now=len(todo), errors=errors,
                        wall_seconds=round(wall, 3), questions_per_second=round(len(todo) / wall, 4))
        else:
            info = {**(read_run_info(status_file) or {}), **info, "status": "complete", "answered_now": 0}
        atomic_write_json(status_file, info, indent=2)
        barrier(part)   # torchrun: rank 0 merges once every rank has written its rows
        if not part.merges:
            return None
        merge_run(out, [record.id for record, _ in items])
        return score_run(out, settings.questions)
    finally:
        leave(part)


def _answer(backend, todo: list[Question], rows_file: Path, already: int, progress: bool) -> int:
    """Write the backend's answers to `rows_file` as they come; returns how many failed (error rows)."""
    errors = 0
    synced = time.monotonic()
    bar = tqdm(total=already + len(todo), initial=already, unit="q", desc="evaluate", disable=not progress,
               dynamic_ncols=True)
    try:
        with rows_file.open("a", encoding="utf-8") as fh:
            for answers in backend.answer(todo):
                fh.write("".join(json.dumps(prediction_row(a.question.record, a.raw,
                                                           **({"error": a.error} if a.error else {})),
                                            ensure_ascii=False) + "\n" for a in answers))
                fh.flush()
                if time.monotonic() - synced > _SYNC_SECONDS:
                    os.fsync(fh.fileno())
                    synced = time.monotonic()
                errors += sum(a.error is not None for a in answers)
                bar.update(len(answers))
                if errors:
                    bar.set_postfix(errors=errors)
            os.fsync(fh.fileno())
    finally:   # an error's line then stands alone, after the bar
        bar.close()
    return errors
