"""Position questions from a COCO instances file: real COCO 2017 or the COCO files our renderer writes.

The study's rule by default: per image keep only categories with exactly one instance (crowd regions
count as instances); the label is the area of that box's centre by the one rule
(`blender_scenes.labels`); the question names the category. Optional filters (crowd, small boxes,
centres near a third line), area balancing and a seeded limit are applied to the *targets*, so every task
asks about the same objects. The file is validated once when read (errors name file and field) and
indexed once by pycocotools. No bpy, no torch.
"""
from __future__ import annotations

import contextlib
import gc
import os
import random
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from blender_scenes.labels import AREAS, LABELS, TASKS, area_of_box, distance_to_third_line, label_of_box
from blender_scenes.questions import (QuestionRecord, balanced_indices, describe, options_with_answer,
                                      question_text, write_jsonl)
from blender_scenes.cocofile import load_instances
from blender_scenes.errors import InputError


@dataclass
class CocoQuestionSettings:
    """How targets are chosen and which questions are asked about them."""

    tasks: list[str] = field(default_factory=lambda: ["area9"])
    split: str | None = None              # default: train/val/test found in the file name, else its stem
    exclude_crowd: bool = False           # drop crowd boxes and categories with a crowd region in the image
    min_area: float | None = None         # drop boxes with w*h < min_area * W*H
    ambiguity_margin: float | None = None  # drop centres within this fraction of a side of a third line (0: on it)
    balance_areas: bool = False           # subsample targets to the same count in each of the nine areas
    limit: int | None = None              # at most this many targets, a seeded sample
    attributes: list[str] = field(default_factory=list)  # annotation keys said before the category
    source: str = "coco"
    seed: int = 0

    def check(self) -> None:
        for task in self.tasks:
            if task not in TASKS:
                raise InputError(f"--tasks: unknown task {task!r}; expected some of {', '.join(TASKS)}")
        if not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise InputError("--tasks: expected one or more distinct tasks")
        if self.min_area is not None and not 0 <= self.min_area < 1:
            raise InputError(f"--min-area: expected a fraction of the image area in [0, 1), got {self.min_area}")
        if self.ambiguity_margin is not None and not 0 <= self.ambiguity_margin < 1 / 6:
            raise InputError("--ambiguity-margin: expected a fraction of the image side in [0, 1/6), "
                             f"got {self.ambiguity_margin}")
        if self.limit is not None and self.limit < 0:
            raise InputError(f"--limit: expected a non-negative count, got {self.limit}")
        if self.source not in ("coco", "synthetic"):
            raise InputError(f"--source: expected coco or synthetic, got {self.source!r}")


@contextlib.contextmanager
def _no_gc():
    """Pause the cyclic GC: building millions of small containers triggers repeated full collections;
    nothing built here forms reference cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def split_of(path: Path) -> str:
    """'val' from instances_val2017.json, 'train' from annotations/train.json; else the file's stem."""
    match = re.search(r"(train|val|test)", path.stem)
    return match.group(1) if match else path.stem


# -- choosing targets ------------------------------------------------------------------------------------

@dataclass
class Target:
    """One object a question asks about: its annotation, its image and how it is named."""

    ann: dict
    img: dict
    category: str
    description: str
    attributes: dict
    area_label: str


def _describe_key(ann: dict, attributes: list[str], path: Path) -> tuple:
    values = []
    for key in attributes:
        value = ann.get(key)
        if not isinstance(value, str) or not value:
            raise InputError(f"{path}: annotation {ann['id']}: field '{key}': expected a string "
                             f"(named by --attributes), got {value!r}")
        values.append(value)
    return (ann["category_id"], *values)


def select_targets(coco, settings: CocoQuestionSettings, path: Path) -> tuple[list[Target], dict]:
    """Targets in (image id, annotation id) order and the number of annotations each rule dropped."""
    names = {cat["id"]: cat["name"] for cat in coco.dataset["categories"]}
    dropped: Counter = Counter()
    targets: list[Target] = []
    for img_id in sorted(coco.imgs):
        img = coco.imgs[img_id]
        width, height = img["width"], img["height"]
        groups: dict[tuple, list[dict]] = defaultdict(list)
        for ann in coco.imgToAnns.get(img_id, ()):
            groups[_describe_key(ann, settings.attributes, path)].append(ann)
        for key, group in groups.items():
            if settings.exclude_crowd and any(a.get("iscrowd", 0) for a in group):
                dropped["crowd"] += len(group)
                continue
            if len(group) != 1:
                dropped["repeated"] += len(group)
                continue
            ann = group[0]
            bbox = ann["bbox"]
            if settings.min_area is not None and bbox[2] * bbox[3] < settings.min_area * width * height:
                dropped["small"] += 1
                continue
            if (settings.ambiguity_margin is not None
                    and distance_to_third_line(bbox, width, height) <= settings.ambiguity_margin):
                dropped["ambiguous"] += 1
                continue
            attributes = dict(zip(settings.attributes, key[1:]))
            category = names[ann["category_id"]]
            targets.append(Target(ann, img, category,
                                  describe({**attributes, "category": category}, [*settings.attributes, "category"]),
                                  attributes, area_of_box(bbox, width, height)))
    targets.sort(key=lambda t: (t.img["id"], t.ann["id"]))
    return targets, dict(dropped)


def balance_and_limit(targets: list[Target], settings: CocoQuestionSettings, path: Path,
                      dropped: dict) -> list[Target]:
    """Seeded subsampling: the same count in every area (--balance-areas), then at most --limit targets."""
    rng = random.Random(settings.seed)
    order = {id(t): i for i, t in enumerate(targets)}
    if settings.balance_areas:
        by_area: dict[str, list[Target]] = {area: [] for area in AREAS}
        for t in targets:
            by_area[t.area_label].append(t)
        empty = [area for area, group in by_area.items() if not group]
        if empty:
            raise InputError(f"{path}: --balance-areas: no target left in area(s) {', '.join(empty)} "
                             "after filtering; nothing to balance")
        per_area = min(len(group) for group in by_area.values())
        kept = [t for area in AREAS for t in rng.sample(by_area[area], per_area)]
        dropped["balance"] = len(targets) - len(kept)
        targets = sorted(kept, key=lambda t: order[id(t)])
    if settings.limit is not None and settings.limit < len(targets):
        kept = rng.sample(targets, settings.limit)
        dropped["limit"] = len(targets) - len(kept)
        targets = sorted(kept, key=lambda t: order[id(t)])
    return targets


# -- questions -------------------------------------------------------------------------------------------

def _image_path(file_name: str, images: str | Path | None) -> str:
    return str(Path(images) / file_name) if images else file_name


def iter_questions(targets: list[Target], settings: CocoQuestionSettings, split: str,
                   images: str | Path | None = None) -> Iterator[QuestionRecord]:
    """One record per target and task, task by task; the correct option's position is balanced per task
    (seeded). A generator, so train2017-size files are written without holding every record."""
    for task in settings.tasks:
        rng = random.Random(f"{settings.seed}:{task}")
        slots = balanced_indices(len(targets), len(LABELS[task]), rng)
        for t, slot in zip(targets, slots):
            ann, img = t.ann, t.img
            answer = label_of_box(ann["bbox"], img["width"], img["height"], task)
            yield QuestionRecord(
                id=f"coco-{img['id']}-{ann['id']}-{task}",
                image=_image_path(img["file_name"], images),
                task=task,
                question=question_text(t.description),
                options=options_with_answer(task, answer, slot, rng),
                answer=answer,
                target={"bbox": list(ann["bbox"]), "category": t.category, "category_id": ann["category_id"],
                        "annotation_id": ann["id"], "image_id": img["id"], "area": ann.get("area"),
                        "area_label": t.area_label, "iscrowd": ann.get("iscrowd", 0),
                        "image_width": img["width"], "image_height": img["height"], **t.attributes},
                source=settings.source,
                split=split,
            )


def select(instances: str | Path, settings: CocoQuestionSettings) -> tuple[list[Target], str, dict]:
    """The targets of an instances file under `settings`, the split name, and a summary of the choice."""
    settings.check()
    path = Path(instances)
    coco = load_instances(path)
    split = settings.split or split_of(path)
    targets, dropped = select_targets(coco, settings, path)
    candidates = len(targets)
    targets = balance_and_limit(targets, settings, path, dropped)
    per_area = Counter(t.area_label for t in targets)
    summary = {
        "instances": str(path),
        "split": split,
        "images": len(coco.imgs),
        "images_with_targets": len({t.img["id"] for t in targets}),
        "annotations": len(coco.anns),
        "dropped": {reason: dropped.get(reason, 0)
                    for reason in ("crowd", "repeated", "small", "ambiguous", "balance", "limit")},
        "candidates": candidates,
        "targets": len(targets),
        "targets_per_area": {area: per_area.get(area, 0) for area in AREAS},
        "questions": {task: len(targets) for task in settings.tasks},
        "settings": asdict(settings),
    }
    return targets, split, summary


def coco_questions(instances: str | Path, settings: CocoQuestionSettings | None = None,
                   images: str | Path | None = None) -> tuple[list[QuestionRecord], dict]:
    """Question records from an instances file, and a summary of what was kept and dropped."""
    settings = settings or CocoQuestionSettings()
    with _no_gc():
        targets, split, summary = select(instances, settings)
        return list(iter_questions(targets, settings, split, images)), summary


def _relative_to_root(images: Path, out: Path) -> str:
    """A relative --images folder (given from the working directory) rewritten relative to the question
    file's dataset root, where `resolve_image` looks for relative image paths."""
    out_dir = out.resolve().parent
    root = out_dir.parent if out_dir.name == "questions" else out_dir
    return os.path.relpath(images.resolve(), root)


def write_coco_questions(instances: str | Path, out: str | Path, images: str | Path | None = None,
                         settings: CocoQuestionSettings | None = None) -> dict:
    """Build the questions and write them atomically to `out` (JSONL); returns the summary."""
    settings = settings or CocoQuestionSettings()
    if images is not None and not Path(images).is_absolute():
        images = _relative_to_root(Path(images), Path(out))
    with _no_gc():
        targets, split, summary = select(instances, settings)
        write_jsonl(Path(out), (r.model_dump() for r in iter_questions(targets, settings, split, images)))
    summary["out"] = str(out)
    return summary
