"""The audit of one question file (*.jsonl, e.g. COCO questions from the evaluation package): what can be
known without scenes: target area distribution, answers per task and whether each equals the label of its
box, the correct option's index, counts per category. Image sizes come from target fields or image headers
(never decoded; an image over the pixel limit is a finding). Of the audit it imports only pictures, balance,
findings and progress."""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..images import DEFAULT_MAX_IMAGE_PIXELS, header_size, pixel_problem
from ..labels import AREAS, LABELS, RELATION_TASKS, area_of_box, label_of_box, relation_of_boxes
from ..questions import QuestionRecord, read_questions, resolve_image
from . import pictures
from .balance import count_levels, figures
from .findings import Finding
from .progress import SILENT, Phases

TALLY_STEP = 500   # records between two moves of the bar: rich's advance takes a lock
SIZE_KEYS = (("image_width", "image_height"), ("width", "height"))


def image_size(q: QuestionRecord, path: Path, cache: dict) -> tuple[int, int] | None:
    """(width, height) from the target's fields, the record's, or the image file's header."""
    for src in (q.target, q.model_extra or {}):
        for kw, kh in SIZE_KEYS:
            if src.get(kw) and src.get(kh):
                return int(src[kw]), int(src[kh])
    image = resolve_image(q, path)
    if image not in cache:
        cache[image] = header_size(image)   # the header only, whatever its size: the limit is checked apart
    return cache[image]


@dataclass(frozen=True)
class Target:
    """One distinct target of the file: (image, box) counted once, however many questions ask about it."""
    area: str
    category: str


@dataclass
class AnswerTally:
    """What the boxes say of a question file's answers."""
    targets: dict[tuple, Target] = field(default_factory=dict)   # (image, box) -> target
    checked: int = 0      # answers whose box and image size are known
    verified: int = 0     # of those, answers equal to the label of their box
    unsized: int = 0      # records without a box or an image size: not checked
    findings: list[Finding] = field(default_factory=list)


@dataclass
class QuestionFileSummary:
    summary: dict                  # the report's figures of the file (JSON)
    findings: list[Finding]
    area_grid: list[list[int]]     # targets per area as a 3x3 grid, for the pictures


def summarize_questions(path: str | Path, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                        phases: Phases = SILENT, label: str = "questions") -> QuestionFileSummary:
    """Counts and checks of a question file; raises InputError when it cannot be read. `label` names its bar."""
    path = Path(path)
    records = read_questions(path)
    with phases.phase(f"{label}: labels from boxes", len(records)) as advance:
        tally = tally_answers(records, path, max_image_pixels, advance)
    areas = count_levels((t.area for t in tally.targets.values()), AREAS)
    cats = Counter(t.category for t in tally.targets.values())
    summary = {
        "file": str(path), "questions": len(records), "targets": len(tally.targets),
        "sources": dict(Counter(q.source for q in records)), "splits": dict(Counter(q.split for q in records)),
        "labels_checked": tally.checked, "labels_verified": tally.verified,
        "labels_verified_share": tally.verified / tally.checked if tally.checked else None,
        "without_image_size": tally.unsized,
        "areas": {"counts": areas, **figures(list(areas.values()))},
        "categories": dict(cats.most_common()), "tasks": task_figures(records),
    }
    grid = [[areas[AREAS[3 * r + c]] for c in range(3)] for r in range(3)]
    return QuestionFileSummary(summary, tally.findings, grid)


def tally_answers(records: list[QuestionRecord], path: Path, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                  advance=None) -> AnswerTally:
    """Each answer against the label of its box (where the image size is known; a 2D relation: of its target and
    anchor boxes), each answer among its options, each image within the pixel limit (one finding per image, at
    its first record). Depth answers need a depth pass and are counted unchecked. `advance(n)`: told of the
    records done, a step of TALLY_STEP at a time."""
    tally = AnswerTally()
    cache: dict = {}
    too_large: set[str] = set()
    for line, q in enumerate(records, 1):
        _tally_one(tally, line, q, path, cache, too_large, max_image_pixels)
        if advance and line % TALLY_STEP == 0:
            advance(TALLY_STEP)
    if advance:
        advance(len(records) % TALLY_STEP)
    return tally


def _tally_one(tally: AnswerTally, line: int, q: QuestionRecord, path: Path, cache: dict, too_large: set[str],
               max_image_pixels: int) -> None:
    """One record's findings and counts into `tally`."""
    bbox = q.target.get("bbox")
    size = image_size(q, path, cache)
    problem = pixel_problem(size, max_image_pixels) if size else None
    if problem and q.image not in too_large:
        too_large.add(q.image)
        tally.findings.append(Finding("integrity", q.split, f"{path.name}:{line}",
                                      f"question {q.id}: image {q.image} {problem}"))
    if size is None or not bbox:
        tally.unsized += 1
        return
    W, H = size
    tally.targets.setdefault((q.image, tuple(bbox)), Target(area_of_box(bbox, W, H),
                                                           q.target.get("category", "?")))
    if q.task in RELATION_TASKS:   # 2D relations from the two boxes; depth needs a depth pass: unchecked here
        anchor = (q.anchor or {}).get("bbox")
        if q.task == "depth" or not anchor:
            tally.unsized += 1
            return
        want = relation_of_boxes(bbox, anchor, q.task)
    else:
        want = label_of_box(bbox, W, H, q.task)
    tally.checked += 1
    if q.answer == want:
        tally.verified += 1
    else:
        tally.findings.append(Finding("labels", q.split, f"{path.name}:{line}",
                                      f"question {q.id}: answer {q.answer!r}, its box gives {want!r}"))
    if q.options and q.answer not in q.options:
        tally.findings.append(Finding("integrity", q.split, f"{path.name}:{line}",
                                      f"question {q.id}: answer {q.answer!r} is not among its options"))


def task_figures(records: list[QuestionRecord]) -> dict[str, dict]:
    """Per task: questions, answer counts and their figures, the correct option's index."""
    by_task = defaultdict(list)
    for q in records:
        by_task[q.task].append(q)
    tasks = {}
    for task, qs in by_task.items():
        c = count_levels((q.answer for q in qs), LABELS.get(task, ()))
        entry = {"questions": len(qs), "answers": dict(c), **figures(list(c.values()))}
        with_opts = [q for q in qs if q.options]
        if with_opts:
            k = len(LABELS.get(task, ())) or max(len(q.options) for q in with_opts)
            idx = count_levels((q.options.index(q.answer) for q in with_opts if q.answer in q.options), list(range(k)))
            entry["option_index"] = {str(i): n for i, n in idx.items()}
            entry["option_index_figures"] = figures(list(idx.values()))
        tasks[task] = entry
    return tasks


def audit_question_file(path: Path, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                        phases: Phases = SILENT) -> tuple[dict, dict]:
    """The report of a question file alone (no scenes) and its pictures."""
    audited = summarize_questions(path, max_image_pixels, phases)
    summary, findings = audited.summary, audited.findings
    strict = [f for f in findings if f.strict]
    report = {"kind": "questions", "dataset": str(path), **summary,
              "headline": {"questions": summary["questions"], "targets": summary["targets"],
                           "labels_verified": summary["labels_verified"], "labels_checked": summary["labels_checked"],
                           "labels_verified_share": summary["labels_verified_share"],
                           "failures": len(strict), "informational": len(findings) - len(strict)},
              "findings": [f.to_json() for f in findings]}
    with phases.phase("pictures", 2) as advance:
        return report, _question_pictures(path.name, audited, advance)


def _question_pictures(name: str, audited: QuestionFileSummary, advance) -> dict[str, bytes]:
    """The target areas' heatmap and the bars of options, areas and categories; a step of the bar each."""
    summary = audited.summary
    figs = {"areas": pictures.heatmaps({name: audited.area_grid}, "targets per area (from each box)",
                                       xlabels=["left", "center", "right"], ylabels=["top", "center", "bottom"])}
    advance()
    bars = {name: {f"option index ({t})": v["option_index"] for t, v in summary["tasks"].items()
                   if v.get("option_index")}}
    bars[name]["area"] = summary["areas"]["counts"]
    bars[name]["category (top 25)"] = dict(list(summary["categories"].items())[:25])
    figs["factors"] = pictures.factor_bars(bars, "targets and options")
    advance()
    return figs
