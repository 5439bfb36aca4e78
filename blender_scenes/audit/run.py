"""The audit of one dataset folder (or one question file), the entry points: scan every scene (in worker
processes for large datasets), run the checks, gather the report and its pictures, write it, with a progress bar
per phase on request; and the lines --strict prints. Imports the rest of the audit; only the CLI (commands.py)
imports it."""
from __future__ import annotations

import multiprocessing
import os
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterator

from ..errors import InputError
from ..images import DEFAULT_MAX_IMAGE_PIXELS
from .dataset_report import dataset_report, run_checks, split_summary
from .figures import dataset_pictures
from .findings import KINDS, Finding
from .progress import SILENT, Phases
from .questionfile import audit_question_file, summarize_questions
from .report import write_report
from .scan import ScanJob, SceneRecord, SceneScan, scan_scene
from .source import Source, open_dataset

PARALLEL_FROM = 300   # fewer scenes are scanned in-process: starting workers would cost more than it saves


def _is_question_file(path: Path) -> bool:
    return path.suffix == ".jsonl" or path.is_file()


def report_folder(path: str | Path, out: str | Path | None = None) -> Path:
    """Where the audit of `path` writes its report: `out`, else DATASET/audit/ or FILE-audit/ beside a question
    file."""
    path = Path(path)
    if out:
        return Path(out)
    return path.parent / f"{path.stem}-audit" if _is_question_file(path) else path / "audit"


def audit_path(path: str | Path, out: str | Path | None = None, max_ratio: float | None = None,
               workers: int | None = None, compare: str | Path | None = None, assets: str | None = None,
               max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, progress: bool = False) -> dict:
    """Audit a dataset folder or a question file (*.jsonl) and write report.json/.md/.html into `out`
    (default DATASET/audit/, or FILE-audit/ beside the question file). `compare`: a question file (e.g. COCO
    questions) whose target areas are shown beside the dataset's. `progress`: a bar per phase on stderr.
    Returns the report."""
    path = Path(path)
    t0 = time.perf_counter()
    out = report_folder(path, out)
    phases = Phases(progress)
    if _is_question_file(path):
        report, figs = audit_question_file(path, max_image_pixels, phases)
    else:
        report, figs = audit_dataset(path, max_ratio, workers, compare, assets, phases)
    report["seconds"] = round(time.perf_counter() - t0, 3)
    write_report(report, figs, out)
    report["report_dir"] = str(out)
    return report


def scan_all(src: Source, workers: int | None, phases: Phases = SILENT) -> dict[str, list[SceneScan]]:
    """Every scene the job planned, plus any scene JSON or image found on disk, scanned once (most of an
    audit's time: each image and every mask decoded)."""
    background = list(src.cfg.image.background) if src.cfg.render.style == "flat" else None
    jobs = []
    for split in src.splits:
        ids = {s.id for s in src.planned.get(split, [])}
        for sub in ("scenes", "images"):
            d = src.root / sub / split
            if d.is_dir():
                ids |= {p.stem for p in d.iterdir() if p.suffix in (".json", ".png") and not p.name.startswith(".")}
        jobs += [ScanJob(str(src.root), split, sid, f"images/{split}/{sid}.png", background) for sid in sorted(ids)]
    out: dict[str, list[SceneScan]] = {s: [] for s in src.splits}
    with phases.phase("scenes: labels from pixels", len(jobs)) as advance:
        for r in _scanned(jobs, workers or min(2, os.cpu_count() or 1)):
            out[r.split].append(r)
            advance()
    return out


def _scanned(jobs: list[ScanJob], workers: int) -> Iterator[SceneScan]:
    """The scans of `jobs`, in their order, as they come."""
    if workers > 1 and len(jobs) >= PARALLEL_FROM:
        ctx = multiprocessing.get_context("spawn")   # never fork a process that may hold threads or bpy
        # an executor (not multiprocessing.Pool): a worker that dies raises BrokenProcessPool, never hangs
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            yield from pool.map(scan_scene, jobs, chunksize=max(16, len(jobs) // (workers * 16)))
    else:
        yield from map(scan_scene, jobs)


def audit_dataset(path: str | Path, max_ratio: float | None = None, workers: int | None = None,
                  compare: str | Path | None = None, assets: str | None = None,
                  phases: Phases = SILENT) -> tuple[dict, dict]:
    """The report of a dataset folder (JSON form) and its pictures, recounted from the files on disk."""
    return audit_source(open_dataset(path, assets), max_ratio, workers, compare, phases=phases)


def audit_source(src: Source, max_ratio: float | None = None, workers: int | None = None,
                 compare: str | Path | None = None, pictures: bool = True,
                 phases: Phases = SILENT) -> tuple[dict, dict]:
    """`audit_dataset` of an opened dataset; without `pictures` (most of the time on small datasets) the second
    item is empty, for callers that need the report alone (the Hub export's card)."""
    scans = scan_all(src, workers, phases)
    rows: dict[str, list[SceneRecord]] = {s: [r.record for r in scans[s] if r.record] for s in scans}
    reference = summarize_questions(compare, phases=phases, label="compared questions") if compare else None
    checks = run_checks(src, scans, rows, max_ratio, reference, phases)
    splits = {split: split_summary(src, split, scans[split], rows[split], checks) for split in scans}
    report = dataset_report(src, max_ratio, splits, checks, reference)
    if not pictures:
        return report, {}
    compared = {Path(compare).name: reference.area_grid} if reference else None
    return report, dataset_pictures(src, rows, splits, compared, phases)


def strict_lines(report: dict, limit: int = 20) -> list[str]:
    """The first lines --strict prints: what failed, by kind, then the first findings."""
    fails = [Finding(**f) for f in report["findings"] if f["strict"]]
    if not fails:
        return []
    by = defaultdict(list)
    for f in fails:
        by[f.kind].append(f)
    head = "FAILED: " + ", ".join(f"{len(v)} {k}" for k, v in by.items())
    lines = [head]
    for k in KINDS:
        lines += [f.line() for f in by.get(k, [])[: max(3, limit // max(1, len(by)))]]
    return lines


__all__ = ["InputError", "audit_dataset", "audit_path", "strict_lines"]
