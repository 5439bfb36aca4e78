"""The audit of one dataset folder (or one question file): scan every scene in worker processes, run the
checks, gather counts and balance figures per split, draw the pictures, write the report."""
from __future__ import annotations

import multiprocessing
import os
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ..errors import InputError
from ..labels import AREAS
from . import pictures
from .balance_checks import BalanceCheck, balance_checks, failures
from .coco_checks import check_coco
from .findings import KINDS, Finding
from .hygiene import check_hygiene
from .question_checks import check_questions
from .questionfile import audit_question_file, summarize_questions
from .report import write_report
from .scan import ScanJob, SceneRecord, SceneScan, scan_scene
from .scene_checks import LabelStats, check_scenes
from .sections import (answers_section, area_grid, cell_grid, counts_section, factor_levels, fill_section,
                       visibility_section)
from .source import Source, open_dataset

PARALLEL_FROM = 300   # fewer scenes are scanned in-process: starting workers would cost more than it saves


def audit_path(path: str | Path, out: str | Path | None = None, max_ratio: float | None = None,
               workers: int | None = None, compare: str | Path | None = None, assets: str | None = None) -> dict:
    """Audit a dataset folder or a question file (*.jsonl) and write report.json/.md/.html into `out`
    (default DATASET/audit/, or FILE-audit/ beside the question file). `compare`: a question file (e.g. COCO
    questions) whose target areas are shown beside the dataset's. Returns the report."""
    path = Path(path)
    t0 = time.perf_counter()
    if path.suffix == ".jsonl" or path.is_file():
        report, figs = audit_question_file(path)
        out = Path(out) if out else path.parent / f"{path.stem}-audit"
    else:
        report, figs = audit_dataset(path, max_ratio, workers, compare, assets)
        out = Path(out) if out else path / "audit"
    report["seconds"] = round(time.perf_counter() - t0, 3)
    write_report(report, figs, out)
    report["report_dir"] = str(out)
    return report


def scan_all(src: Source, workers: int | None) -> dict[str, list[SceneScan]]:
    """Every scene the job planned, plus any scene JSON or image found on disk, scanned once."""
    background = list(src.cfg.image.background) if src.cfg.render.style == "flat" else None
    jobs = []
    for split in src.splits:
        ids = {s.id for s in src.planned.get(split, [])}
        for sub in ("scenes", "images"):
            d = src.root / sub / split
            if d.is_dir():
                ids |= {p.stem for p in d.iterdir() if p.suffix in (".json", ".png") and not p.name.startswith(".")}
        jobs += [ScanJob(str(src.root), split, sid, f"images/{split}/{sid}.png", background) for sid in sorted(ids)]
    workers = workers or min(2, os.cpu_count() or 1)
    if workers > 1 and len(jobs) >= PARALLEL_FROM:
        ctx = multiprocessing.get_context("spawn")   # never fork a process that may hold threads or bpy
        # an executor (not multiprocessing.Pool): a worker that dies raises BrokenProcessPool, never hangs
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            results = list(pool.map(scan_scene, jobs, chunksize=max(16, len(jobs) // (workers * 16))))
    else:
        results = [scan_scene(j) for j in jobs]
    out: dict[str, list[SceneScan]] = {s: [] for s in src.splits}
    for r in results:
        out[r.split].append(r)
    return out


def audit_dataset(path: str | Path, max_ratio: float | None = None, workers: int | None = None,
                  compare: str | Path | None = None, assets: str | None = None) -> tuple[dict, dict]:
    src = open_dataset(path, assets)
    cfg = src.cfg
    scans = scan_all(src, workers)
    findings: list[Finding] = []
    scenes = check_scenes(src, scans)
    qcheck = check_questions(src, scans)
    questions = qcheck.records
    ccheck = check_coco(src, scans)
    hcheck = check_hygiene(src, scans, questions, ccheck.indexes)
    hygiene = hcheck.summary.to_json()
    findings += scenes.findings + qcheck.findings + ccheck.findings + hcheck.findings
    # an interrupted atomic write leaves its temporary file; harmless (never read), but worth a line
    findings += [Finding("integrity", None, str(p.relative_to(src.root)), "leftover temporary file of an "
                         "interrupted write (safe to delete)", strict=False)
                 for p in sorted(src.root.glob("*/**/.*.tmp"))]
    if src.replan_differs:
        findings.append(Finding("integrity", None, "plan.json", "today's code would plan this design "
                                "differently (another scenes2real or numpy/scipy version); the stored plan is "
                                "the one audited", strict=False))
    rows: dict[str, list[SceneRecord]] = {s: [r.record for r in scans[s] if r.record] for s in scans}
    checks = balance_checks(src, rows, questions, max_ratio)
    findings += failures(checks)

    splits = {}
    verified_total = targets_total = 0
    for split in scans:
        lv = factor_levels(src, sorted({r.subset for r in rows[split] if src.subset(r.subset)}) or None)
        st = scenes.stats.get(split, LabelStats())
        verified = st.verified({sid for s, sid in qcheck.wrong | ccheck.wrong if s == split})
        verified_total += verified
        targets_total += st.targets
        images = [r.image for r in scans[split]]
        splits[split] = {
            "planned": len(src.planned.get(split, [])), "planned_in_design": src.design_counts.get(split, 0),
            "partial": src.partial(split), "manifest_status": (src.manifest.get("status") or {}).get(split),
            "scene_files": sum(r.scene_exists for r in scans[split]), "scenes_read": len(rows[split]),
            "images_found": sum(i.exists for i in images), "images_decoded": sum(i.decodes for i in images),
            "questions": len(questions.get(split, [])),
            "labels": st.to_json(verified),
            "counts": counts_section(rows[split], lv),
            "answers": answers_section(questions.get(split, []), cfg),
            "visibility": visibility_section(rows[split]),
            "fill": fill_section(rows[split]),
        }
    strict = [f for f in findings if f.strict]
    report = {
        "kind": "dataset", "dataset": str(src.root), "design": cfg.name, "config_hash": cfg.digest(),
        "manifest_config_hash": src.manifest.get("config_hash"),
        "design_kind": cfg.design.kind, "repeat": cfg.design.repeat, "variations": cfg.distractors.variations,
        "style": cfg.render.style, "image_size": [cfg.image.width, cfg.image.height],
        "heldout": list(cfg.splits.heldout), "job": src.job, "max_ratio": max_ratio,
        "partial_splits": [s for s in scans if src.partial(s)],
        "headline": {
            "scenes": sum(s["scenes_read"] for s in splits.values()),
            "images": sum(s["images_decoded"] for s in splits.values()),
            "targets": targets_total, "labels_verified": verified_total,
            "labels_verified_share": verified_total / targets_total if targets_total else None,
            "worst_enforced_ratio": _worst(checks), "heldout_leaks": hygiene["leaks"],
            "identical_image_groups": len(hygiene["duplicate_groups"]),
            "failures": len(strict), "informational": len(findings) - len(strict),
            "failures_by_kind": {k: sum(f.kind == k for f in strict) for k in KINDS},
        },
        "splits": splits, "balance": [c.to_json() for c in checks], "hygiene": hygiene,
        "findings": [f.to_json() for f in findings],
    }
    if src.manifest.get("config_hash") not in (None, cfg.digest()):
        f = Finding("integrity", None, "manifest.json", f"config_hash {src.manifest.get('config_hash')} is not "
                    f"the hash of its config ({cfg.digest()})")
        report["findings"].append(f.to_json())
        report["headline"]["failures"] += 1
        report["headline"]["failures_by_kind"]["integrity"] += 1
    extra = None
    if compare:
        summary, cfind, extra = summarize_questions(compare)
        report["compare"] = {k: summary[k] for k in ("file", "questions", "targets", "areas", "labels_verified_share",
                                                     "without_image_size")}
        # reference data: its findings are shown, never fail --strict on the dataset
        report["findings"] += [Finding(f.kind, f.split, f.file, f.message, strict=False).to_json() for f in cfind]
        report["headline"]["informational"] += len(cfind)
    return report, dataset_pictures(src, scans, rows, splits, extra and {Path(compare).name: extra["area_grid"]})


def _worst(checks: list[BalanceCheck]) -> float | None:
    """Largest enforced ratio; an empty cell counts only where it breaks its rule (a mean below one allows it)."""
    enforced = [c for c in checks if c.strict and c.ok is not None]
    if any(c.ratio is None and not c.ok for c in enforced):
        return None
    ratios = [c.ratio for c in enforced if c.ratio is not None]
    return max(ratios) if ratios else None


def dataset_pictures(src: Source, scans, rows, splits, compare: dict | None = None) -> dict[str, bytes]:
    cfg = src.cfg
    figs: dict[str, bytes] = {}
    if not any(rows.values()):
        return figs
    rows_ = {s: r for s, r in rows.items() if r}
    figs["areas"] = pictures.heatmaps({s: area_grid(r) for s, r in rows_.items()} | (compare or {}),
                                      "targets per area (from each target's mask)",
                                      xlabels=["left", "center", "right"], ylabels=["top", "center", "bottom"])
    figs["cells"] = pictures.heatmaps({s: cell_grid(r, cfg.grid.rows, cfg.grid.cols) for s, r in rows_.items()},
                                      "targets per placement cell (planned_cell)")
    per_split = {s: {k: v["counts"] for k, v in splits[s]["counts"]["targets"].items() if k not in ("cell", "area")}
                 for s in rows_}
    for s in per_split:
        per_split[s]["answer (area9)"] = {a: splits[s]["counts"]["targets"]["area"]["counts"].get(a, 0) for a in AREAS}
    figs["factors"] = pictures.factor_bars(per_split, "targets per factor level")
    idx = {s: {f"option index ({t})": v.get("option_index", {}) for t, v in splits[s]["answers"].items()
               if v.get("option_index")} for s in rows_}
    if any(idx.values()):
        figs["options"] = pictures.factor_bars(idx, "position of the correct option in the shuffled options")
    vis = {s: splits[s]["visibility"]["histogram"]["counts"] for s in rows_}
    edges = next(iter(splits.values()))["visibility"]["histogram"]["edges"]
    figs["visibility"] = pictures.histogram(vis, edges, "visible share of every object", "visible share")
    samples = []
    for s, r in rows_.items():
        step = max(1, len(r) // 4)
        for rec in r[::step][:4]:
            t = rec.objects[0]
            samples.append({"image": rec.image, "objects": [{"bbox": o.mask_box, "role": o.role}
                                                             for o in rec.objects],
                            "caption": [f"{s} {rec.id}: " + " ".join(
                                str(getattr(t, k)) for k in ("size", "color", "material", "shape") if getattr(t, k)),
                                        f"-> {t.mask_area}"]})
    grid = pictures.sample_grid(samples, src.root)
    if grid:
        figs["samples"] = grid
    return figs


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


__all__ = ["audit_path", "audit_dataset", "strict_lines", "InputError"]
