"""The audit of one question file (*.jsonl, e.g. COCO questions from the evaluation package): what can be
known without scenes: target area distribution, answers per task and whether each equals the label of its
box, the correct option's index, counts per category. Image sizes come from target fields or image headers."""
from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from PIL import Image

from ..labels import AREAS, LABELS, area_of_box, label_of_box
from ..questions import QuestionRecord, read_questions, resolve_image
from . import pictures
from .balance import count_levels, figures
from .findings import Finding

SIZE_KEYS = (("image_width", "image_height"), ("width", "height"))


def image_size(q: QuestionRecord, path: Path, cache: dict) -> tuple[int, int] | None:
    """(width, height) from the target's fields, the record's, or the image file's header."""
    for src in (q.target, q.model_extra or {}):
        for kw, kh in SIZE_KEYS:
            if src.get(kw) and src.get(kh):
                return int(src[kw]), int(src[kh])
    image = resolve_image(q, path)
    if image not in cache:
        try:
            with Image.open(image) as im:   # reads the header only
                cache[image] = im.size
        except (OSError, ValueError):
            cache[image] = None
    return cache[image]


def summarize_questions(path: str | Path) -> tuple[dict, list[Finding], dict]:
    """Counts and checks of a question file; raises InputError when it cannot be read."""
    path = Path(path)
    records = read_questions(path)
    findings: list[Finding] = []
    cache: dict = {}
    targets: dict[tuple, dict] = {}
    by_task = defaultdict(list)
    checked = verified = unsized = 0
    for line, q in enumerate(records, 1):
        by_task[q.task].append(q)
        bbox = q.target.get("bbox")
        size = image_size(q, path, cache) if bbox else None
        if size is None:
            unsized += 1
            continue
        W, H = size
        key = (q.image, tuple(bbox))
        targets.setdefault(key, {"area": area_of_box(bbox, W, H), "category": q.target.get("category", "?"),
                                 "split": q.split})
        checked += 1
        want = label_of_box(bbox, W, H, q.task)
        if q.answer == want:
            verified += 1
        else:
            findings.append(Finding("labels", q.split, f"{path.name}:{line}",
                                    f"question {q.id}: answer {q.answer!r}, its box gives {want!r}"))
        if q.options and q.answer not in q.options:
            findings.append(Finding("integrity", q.split, f"{path.name}:{line}",
                                    f"question {q.id}: answer {q.answer!r} is not among its options"))
    areas = count_levels((t["area"] for t in targets.values()), AREAS)
    cats = Counter(t["category"] for t in targets.values())
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
    summary = {
        "file": str(path), "questions": len(records), "targets": len(targets),
        "sources": dict(Counter(q.source for q in records)), "splits": dict(Counter(q.split for q in records)),
        "labels_checked": checked, "labels_verified": verified,
        "labels_verified_share": verified / checked if checked else None, "without_image_size": unsized,
        "areas": {"counts": areas, **figures(list(areas.values()))},
        "categories": dict(cats.most_common()), "tasks": tasks,
    }
    return summary, findings, {"area_grid": [[areas[AREAS[3 * r + c]] for c in range(3)] for r in range(3)]}


def audit_question_file(path: Path) -> tuple[dict, dict]:
    summary, findings, extra = summarize_questions(path)
    strict = [f for f in findings if f.strict]
    report = {"kind": "questions", "dataset": str(path), **summary,
              "headline": {"questions": summary["questions"], "targets": summary["targets"],
                           "labels_verified": summary["labels_verified"], "labels_checked": summary["labels_checked"],
                           "labels_verified_share": summary["labels_verified_share"],
                           "failures": len(strict), "informational": len(findings) - len(strict)},
              "findings": [f.to_json() for f in findings]}
    figs = {"areas": pictures.heatmaps({path.name: extra["area_grid"]}, "targets per area (from each box)",
                                       xlabels=["left", "center", "right"], ylabels=["top", "center", "bottom"])}
    bars = {path.name: {f"option index ({t})": v["option_index"] for t, v in summary["tasks"].items()
                        if v.get("option_index")}}
    bars[path.name]["area"] = summary["areas"]["counts"]
    bars[path.name]["category (top 25)"] = dict(list(summary["categories"].items())[:25])
    figs["factors"] = pictures.factor_bars(bars, "targets and options")
    return report, figs
