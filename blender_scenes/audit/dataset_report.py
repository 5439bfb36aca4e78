"""The report of a dataset audit in its JSON form: every check run on the scanned scenes, the figures of each
split, the headline and the top-level fields. Of the audit it imports the checks, sections, scan, source,
findings, progress and questionfile; never run or the pages."""
from __future__ import annotations

from dataclasses import dataclass, replace

from .balance_checks import BalanceCheck, balance_checks, failures
from .coco_checks import CocoCheck, check_coco
from .findings import KINDS, Finding
from .hygiene import HygieneCheck, check_hygiene
from .progress import SILENT, Phases
from .question_checks import QuestionCheck, check_questions
from .questionfile import QuestionFileSummary
from .scan import SceneRecord, SceneScan
from .scene_checks import LabelStats, SceneCheck, check_scenes
from .sections import answers_section, counts_section, factor_levels, fill_section, visibility_section
from .source import Source

COMPARED = ("file", "questions", "targets", "areas", "labels_verified_share", "without_image_size")


@dataclass
class DatasetChecks:
    """Every check of one dataset, and all their findings in report order."""
    scenes: SceneCheck
    questions: QuestionCheck
    coco: CocoCheck
    hygiene: HygieneCheck
    balance: list[BalanceCheck]
    findings: list[Finding]

    def wrong_targets(self, split: str) -> set[str]:
        """Targets of a split that the question file or the COCO file labels otherwise than their mask."""
        return {sid for s, sid in self.questions.wrong | self.coco.wrong if s == split}


def run_checks(src: Source, scans: dict[str, list[SceneScan]], rows: dict[str, list[SceneRecord]],
               max_ratio: float | None, reference: QuestionFileSummary | None,
               phases: Phases = SILENT) -> DatasetChecks:
    """Integrity, labels, hygiene and balance; a compared question file's findings are shown, never strict."""
    with phases.phase("checks", 5) as advance:   # scenes, questions, COCO, hygiene, balance
        scenes = check_scenes(src, scans)
        advance()
        questions = check_questions(src, scans)
        advance()
        coco = check_coco(src, scans)
        advance()
        hygiene = check_hygiene(src, scans, questions.records, coco.indexes)
        advance()
        balance = balance_checks(src, rows, questions.records, max_ratio)
        advance()
    findings = [*scenes.findings, *questions.findings, *coco.findings, *hygiene.findings,
                *_housekeeping_findings(src), *failures(balance), *_manifest_findings(src)]
    if reference is not None:   # reference data: never fails --strict on the dataset
        findings += [replace(f, strict=False) for f in reference.findings]
    return DatasetChecks(scenes, questions, coco, hygiene, balance, findings)


def _housekeeping_findings(src: Source) -> list[Finding]:
    """Informational: leftovers of interrupted writes, a plan today's code would make otherwise."""
    # an interrupted atomic write leaves its temporary file; harmless (never read), but worth a line
    out = [Finding("integrity", None, str(p.relative_to(src.root)), "leftover temporary file of an interrupted write "
                   "(safe to delete)", strict=False) for p in sorted(src.root.glob("*/**/.*.tmp"))]
    if src.replan_differs:
        out.append(Finding("integrity", None, "plan.json", "today's code would plan this design differently "
                           "(another version of scenes2real, numpy or Python); the stored plan is the one audited",
                           strict=False))
    return out


def _manifest_findings(src: Source) -> list[Finding]:
    recorded, digest = src.manifest.get("config_hash"), src.cfg.digest()
    if recorded in (None, digest):
        return []
    return [Finding("integrity", None, "manifest.json", f"config_hash {recorded} is not the hash of its config "
                    f"({digest})")]


def split_summary(src: Source, split: str, found: list[SceneScan], rows: list[SceneRecord],
                  checks: DatasetChecks) -> dict:
    """The report's section of one split: files found and read, labels verified, counts, answers, visibility."""
    lv = factor_levels(src, sorted({r.subset for r in rows if src.subset(r.subset)}) or None)
    stats = checks.scenes.stats.get(split, LabelStats())
    questions = checks.questions.records.get(split, [])
    images = [scan.image for scan in found]
    return {
        "planned": len(src.planned.get(split, [])), "planned_in_design": src.design_counts.get(split, 0),
        "partial": src.partial(split), "manifest_status": (src.manifest.get("status") or {}).get(split),
        "scene_files": sum(scan.scene_exists for scan in found), "scenes_read": len(rows),
        "images_found": sum(i.exists for i in images), "images_decoded": sum(i.decodes for i in images),
        "questions": len(questions),
        "labels": stats.to_json(stats.verified(checks.wrong_targets(split))),
        "counts": counts_section(rows, lv),
        "answers": answers_section(questions),
        "visibility": visibility_section(rows),
        "fill": fill_section(rows),
    }


def headline(splits: dict[str, dict], checks: DatasetChecks) -> dict:
    """The figures a reader looks at first."""
    strict = [f for f in checks.findings if f.strict]
    targets = sum(s["labels"]["targets"] for s in splits.values())
    verified = sum(s["labels"]["verified"] for s in splits.values())
    hygiene = checks.hygiene.summary
    return {
        "scenes": sum(s["scenes_read"] for s in splits.values()),
        "images": sum(s["images_decoded"] for s in splits.values()),
        "targets": targets, "labels_verified": verified,
        "labels_verified_share": verified / targets if targets else None,
        "worst_enforced_ratio": worst_enforced_ratio(checks.balance), "heldout_leaks": hygiene.leaks,
        "identical_image_groups": len(hygiene.duplicate_groups),
        "failures": len(strict), "informational": len(checks.findings) - len(strict),
        "failures_by_kind": {k: sum(f.kind == k for f in strict) for k in KINDS},
    }


def worst_enforced_ratio(checks: list[BalanceCheck]) -> float | None:
    """Largest enforced ratio; an empty cell counts only where it breaks its rule (a mean below one allows it)."""
    enforced = [c for c in checks if c.strict and c.ok is not None]
    if any(c.ratio is None and not c.ok for c in enforced):
        return None
    ratios = [c.ratio for c in enforced if c.ratio is not None]
    return max(ratios) if ratios else None


def dataset_report(src: Source, max_ratio: float | None, splits: dict[str, dict], checks: DatasetChecks,
                   reference: QuestionFileSummary | None) -> dict:
    """The whole report (JSON form), in the order report.json shows it."""
    cfg = src.cfg
    report = {
        "kind": "dataset", "dataset": str(src.root), "design": cfg.name, "config_hash": cfg.digest(),
        "manifest_config_hash": src.manifest.get("config_hash"),
        "design_kind": cfg.design.kind, "repeat": cfg.design.repeat, "variations": cfg.distractors.variations,
        "style": cfg.render.style, "image_size": [cfg.image.width, cfg.image.height],
        "heldout": list(cfg.splits.heldout), "job": src.job, "max_ratio": max_ratio,
        "partial_splits": [s for s in splits if src.partial(s)],
        "headline": headline(splits, checks),
        "splits": splits, "balance": [c.to_json() for c in checks.balance],
        "hygiene": checks.hygiene.summary.to_json(),
        "findings": [f.to_json() for f in checks.findings],
    }
    if reference is not None:
        report["compare"] = {k: reference.summary[k] for k in COMPARED}
    return report
