"""Split hygiene: held-out combinations absent from train/val (scene records, question targets and COCO
annotations), no image path in two splits, no identical pixels in two splits; identical images listed.
Bad data is reported as findings, never raised. Of the audit it imports only scan, source and findings."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from pycocotools.coco import COCO

from ..questions import QuestionRecord
from .findings import Finding
from .scan import SceneScan, records_of
from .source import Source


@dataclass
class DuplicateGroup:
    """Images with the same decoded pixels."""
    splits: list[str]
    images: list[str]


@dataclass
class Hygiene:
    """The report's hygiene section."""
    heldout_factors: list[str]
    heldout_combinations: list[list[str]] = field(default_factory=list)   # the test set's, as strings
    leaks: int = 0
    duplicate_groups: list[DuplicateGroup] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class HygieneCheck:
    findings: list[Finding]
    summary: Hygiene


def check_hygiene(src: Source, scans: dict[str, list[SceneScan]], questions: dict[str, list[QuestionRecord]],
                  cocos: dict[str, COCO]) -> HygieneCheck:
    """Leaks of held-out combinations, images shared by splits, identical pixels."""
    summary = Hygiene(list(src.cfg.splits.heldout))
    out: list[Finding] = []
    if summary.heldout_factors:
        out += _leak_findings(src, scans, questions, cocos, summary)
    out += _shared_image_findings(scans, questions, cocos)
    out += _identical_pixel_findings(scans, summary)
    return HygieneCheck(out, summary)


def _leak_findings(src: Source, scans: dict[str, list[SceneScan]], questions: dict[str, list[QuestionRecord]],
                   cocos: dict[str, COCO], summary: Hygiene) -> list[Finding]:
    """Every object, question target and annotation of train/val whose held-out factors form a test
    combination (planned for test, or found in a test record)."""
    held = summary.heldout_factors
    combos = {tuple(getattr(s.target, k) for k in held) for s in src.scenes if s.split == "test"}
    combos |= {tuple(getattr(scan.record.objects[0], k) for k in held) for _, scan in records_of(scans, "test")}
    summary.heldout_combinations = sorted([list(map(str, c)) for c in combos])
    out: list[Finding] = []

    def leak(split: str, file: str, what: str, attrs: Mapping) -> None:
        combo = tuple(attrs.get(k) for k in held)
        if combo in combos:
            summary.leaks += 1
            desc = ", ".join(f"{k}={v}" for k, v in zip(held, combo))
            out.append(Finding("hygiene", split, file, f"held-out combination {desc} (a test combination) "
                               f"leaks into {split}: {what}"))

    for split, scan in records_of(scans):
        if split == "test":
            continue
        for k, o in enumerate(scan.record.objects):
            leak(split, f"scenes/{split}/{scan.id}.json", f"object {k + 1} ({o.role})",
                 {key: getattr(o, key, None) for key in held})
    for split, qs in questions.items():
        if split == "test":
            continue
        for line, q in enumerate(qs, 1):
            if all(k in q.target for k in held):
                leak(split, f"questions/{split}.jsonl:{line}", f"question {q.id} target", q.target)
    for split, coco in cocos.items():
        if split == "test":
            continue
        cats = {c["id"]: c for c in coco.dataset.get("categories", [])}
        for a in coco.dataset.get("annotations", []):
            attrs = {**a, "shape": cats.get(a.get("category_id"), {}).get("shape")}
            leak(split, f"annotations/{split}.json", f"annotation {a.get('id')}", attrs)
    return out


def _shared_image_findings(scans: dict[str, list[SceneScan]], questions: dict[str, list[QuestionRecord]],
                           cocos: dict[str, COCO]) -> list[Finding]:
    """The same image path in two splits (scene records, question records or COCO image entries)."""
    where: dict[str, set] = defaultdict(set)
    for split, scan in records_of(scans):
        where[scan.record.image].add(split)
    for split, qs in questions.items():
        for q in qs:
            where[q.image].add(split)
    for split, coco in cocos.items():
        for img in coco.dataset.get("images", []):
            where[img.get("file_name")].add(split)
    return [Finding("hygiene", None, image, f"image referenced by {len(splits)} splits: {', '.join(sorted(splits))}")
            for image, splits in sorted(where.items()) if len(splits) > 1]


def _identical_pixel_findings(scans: dict[str, list[SceneScan]], summary: Hygiene) -> list[Finding]:
    """Groups of images with the same decoded pixels, listed; a finding where a group spans splits."""
    groups: dict[str, list] = defaultdict(list)
    for split, found in scans.items():
        for scan in found:
            if scan.image.hash:
                groups[scan.image.hash].append((split, scan.image_file))
    out = []
    for members in groups.values():
        if len(members) > 1:
            splits = sorted({s for s, _ in members})
            summary.duplicate_groups.append(DuplicateGroup(splits, [p for _, p in members]))
            if len(splits) > 1:
                out.append(Finding("hygiene", None, members[0][1], f"identical pixels in {len(splits)} splits: "
                                   f"{', '.join(p for _, p in members[:4])}"))
    return out
