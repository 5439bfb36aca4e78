"""Position and relation questions from a COCO instances file: real COCO 2017 or the COCO files our renderer
writes.

The study's rule by default: per image keep only categories with exactly one instance (crowd regions
count as instances; a box with no overlap with its image, which files from other tools hold, is no instance:
it is dropped first and counted as `outside`); the label is the area of that box's centre by the one rule
(`blender_scenes.labels`); the question names the category. Optional filters (crowd, small boxes,
centres near a third line), area balancing and a seeded limit are applied to the *targets*, so every area
task asks about the same objects. Relation tasks (`left_right`, `above_below`) ask about pairs of such
objects that are not crowd regions, answered by `labels.relation_of_boxes`. The file is validated once when
read (errors name file and field) and indexed once by pycocotools. Records are built as plain dicts in
`QuestionRecord`'s field order and written as they come (validating a million records one by one costs more
than building them; the tests validate them). With an images folder, the CLI refuses (or, with
--skip-missing, leaves out) the images that are not there, from one listing of the folder. No bpy, no torch.
"""
from __future__ import annotations

import contextlib
import functools
import gc
import itertools
import json
import math
import os
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from json.encoder import encode_basestring as _encode_string
from pathlib import Path
from typing import Any

import orjson

from blender_scenes.cocofile import load_instances
from blender_scenes.errors import InputError
from blender_scenes.labels import (
    AREAS,
    LABELS,
    RELATION_TASKS,
    TASKS,
    area_of_box,
    distance_to_third_line,
    label_of_area,
    relation_of_boxes,
)
from blender_scenes.questions import (
    QuestionRecord,
    balanced_indices,
    dataset_root,
    describe,
    options_with_answer,
    question_text,
    relation_question_text,
    shuffle,
    write_lines,
)

from .imagefiles import count_line, missing_files

#: relation tasks COCO can answer: 2D boxes only (depth needs a rendered depth pass)
COCO_RELATION_TASKS: tuple[str, ...] = tuple(t for t in RELATION_TASKS if t != "depth")
COCO_TASKS: tuple[str, ...] = TASKS + COCO_RELATION_TASKS


@dataclass
class CocoQuestionSettings:
    """How targets (and pairs of objects) are chosen and which questions are asked about them."""

    tasks: list[str] = field(default_factory=lambda: ["area9"])
    split: str | None = None              # default: train/val/test found in the file name, else its stem
    exclude_crowd: bool = False           # drop crowd boxes and categories with a crowd region in the image
    min_area: float | None = None         # drop boxes with w*h < min_area * W*H (targets and anchors)
    ambiguity_margin: float | None = None  # drop centres within this fraction of a side of a third line (0: on it)
    balance_areas: bool = False           # subsample targets to the same count in each of the nine areas
    balance_answers: bool = False         # relation tasks: subsample to the same count per answer, per task
    limit: int | None = None              # at most this many targets / questions per relation task, seeded
    attributes: list[str] = field(default_factory=list)  # annotation keys said before the category
    source: str = "coco"
    seed: int = 0

    @property
    def area_tasks(self) -> list[str]:
        return [t for t in self.tasks if t in TASKS]

    @property
    def relation_tasks(self) -> list[str]:
        return [t for t in self.tasks if t in COCO_RELATION_TASKS]

    def check(self) -> None:
        for task in self.tasks:
            if task == "depth":
                raise InputError("--tasks: depth needs a depth pass, which COCO boxes lack; expected some of "
                                 f"{', '.join(COCO_TASKS)}")
            if task not in COCO_TASKS:
                raise InputError(f"--tasks: unknown task {task!r}; expected some of {', '.join(COCO_TASKS)}")
        if not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise InputError("--tasks: expected one or more distinct tasks")
        if self.balance_answers and not self.relation_tasks:
            raise InputError("--balance-answers: balances relation tasks (left_right, above_below); "
                             "for area tasks use --balance-areas")
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

@dataclass(slots=True)
class Target:
    """One object a question asks about: its annotation, its image and how it is named."""

    ann: dict
    img: dict
    category: str
    description: str
    attributes: dict
    area_label: str
    _record: dict | None = field(default=None, repr=False, compare=False)

    def record(self) -> dict:
        """The object as a record's `target` (or `anchor`) holds it; built once, shared by every question
        about this object (records are written, never changed)."""
        if self._record is None:
            ann, img = self.ann, self.img
            self._record = {"bbox": list(ann["bbox"]), "category": self.category,
                            "category_id": ann["category_id"], "annotation_id": ann["id"], "image_id": img["id"],
                            "area": ann.get("area"), "area_label": self.area_label,
                            "iscrowd": ann.get("iscrowd", 0), "image_width": img["width"],
                            "image_height": img["height"], **self.attributes}
        return self._record


@dataclass
class Selection:
    """What the rules keep: area targets in (image id, annotation id) order; relation candidates per image
    (each image's list in annotation id order); the number of annotations each rule dropped."""

    targets: list[Target]
    candidates: list[list[Target]]
    dropped: Counter


def _describe_key(ann: dict, attributes: list[str], path: Path) -> tuple:
    values = []
    for key in attributes:
        value = ann.get(key)
        if not isinstance(value, str) or not value:
            raise InputError(f"{path}: annotation {ann['id']}: field '{key}': expected a string "
                             f"(named by --attributes), got {value!r}")
        values.append(value)
    return (ann["category_id"], *values)


def outside_image(bbox: Sequence[float], width: float, height: float) -> bool:
    """Whether a box has no overlap with its image: on each axis its interval and the image's share no length
    (a box of zero width or height: its line or point lies outside the closed image). Such boxes, which files
    from other tools hold, are dropped and counted, never labelled by the clamped centre rule."""
    def misses(start: float, length: float, size: float) -> bool:
        return start >= size or start + length <= 0 if length > 0 else start > size or start < 0
    x, y, w, h = bbox
    return misses(x, w, width) or misses(y, h, height)


def select_objects(coco, settings: CocoQuestionSettings, path: Path) -> Selection:
    """One walk over the images: the objects of unique categories (descriptions), filtered by the rules.

    A crowd region counts toward its category's count; it may be an area target (the study's rule) but never
    one side of a relation (its box covers many objects). `--ambiguity-margin` is about third lines, so it
    filters area targets only."""
    names = {cat["id"]: cat["name"] for cat in coco.dataset["categories"]}
    dropped: Counter = Counter()
    targets: list[Target] = []
    candidates: list[list[Target]] = []
    descriptions: dict[tuple, tuple[str, str, dict]] = {}   # key: category, description, attributes
    attributes_named = settings.attributes
    for img_id in sorted(coco.imgs):
        img = coco.imgs[img_id]
        width, height = img["width"], img["height"]
        groups: dict[tuple, list[dict]] = defaultdict(list)
        for ann in coco.imgToAnns.get(img_id, ()):
            x, y, w, h = ann["bbox"]
            if not (x < width and x + w > 0 and y < height and y + h > 0) and outside_image(ann["bbox"], width,
                                                                                            height):
                dropped["outside"] += 1   # no pixel of the image: not an object of it (nor a repeat of one)
                continue
            key = _describe_key(ann, attributes_named, path) if attributes_named else (ann["category_id"],)
            groups[key].append(ann)
        in_image: list[Target] = []
        image_targets: list[Target] = []
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
            named = descriptions.get(key)
            if named is None:  # the same for every object with this key (shared: records copy the attributes)
                attributes = dict(zip(settings.attributes, key[1:]))
                category = names[ann["category_id"]]
                named = descriptions[key] = (category, describe({**attributes, "category": category},
                                                                [*settings.attributes, "category"]), attributes)
            obj = Target(ann, img, *named, area_of_box(bbox, width, height))
            if not ann.get("iscrowd", 0):
                in_image.append(obj)
            if (settings.ambiguity_margin is not None
                    and distance_to_third_line(bbox, width, height) <= settings.ambiguity_margin):
                dropped["ambiguous"] += 1
                continue
            image_targets.append(obj)
        if len(image_targets) > 1:  # images come in id order: sorting each image's targets sorts them all
            image_targets.sort(key=_annotation_id)
        targets += image_targets
        if len(in_image) > 1:
            in_image.sort(key=_annotation_id)
            candidates.append(in_image)
    return Selection(targets, candidates, dropped)


def _annotation_id(target: Target) -> int:
    return target.ann["id"]


def balanced_sample(keys: Sequence[str], classes: Sequence[str], limit: int | None, rng: random.Random,
                    empty_error: Callable[[list[str]], InputError]) -> list[int]:
    """Indices (ascending) of a seeded sample with the same count of each class: the smallest class's count,
    or `limit // k` each when the limit is lower, the remainder going one each to seeded classes."""
    by_class: dict[str, list[int]] = {c: [] for c in classes}
    for i, key in enumerate(keys):
        by_class[key].append(i)
    empty = [c for c, members in by_class.items() if not members]
    if empty:
        raise empty_error(empty)
    per_class = min(len(members) for members in by_class.values())
    counts = dict.fromkeys(classes, per_class)
    if limit is not None and limit < per_class * len(classes):
        quotient, remainder = divmod(limit, len(classes))
        extra = set(rng.sample(list(classes), remainder))
        counts = {c: quotient + (c in extra) for c in classes}
    return sorted(i for c in classes for i in rng.sample(by_class[c], counts[c]))


def subsample(keys: Sequence[str], classes: Sequence[str], balance: bool, limit: int | None, rng: random.Random,
              empty_error: Callable[[list[str]], InputError], dropped: Counter) -> list[int]:
    """Indices (ascending) kept of items whose classes are `keys`: balanced (`balanced_sample`) when asked,
    else at most `limit` (a uniform seeded sample); `dropped` counts what balance and limit took."""
    n = len(keys)
    if balance:
        keep = balanced_sample(keys, classes, limit, rng, empty_error)
        balanced = min(Counter(keys).values()) * len(classes)
        dropped["balance"] = n - balanced
        dropped["limit"] = balanced - len(keep)
        return keep
    if limit is not None and limit < n:
        dropped["limit"] = n - limit
        return sorted(rng.sample(range(n), limit))
    return list(range(n))


def balance_and_limit(targets: list[Target], settings: CocoQuestionSettings, path: Path,
                      dropped: Counter) -> list[Target]:
    """Seeded subsampling of the area targets: the same count in every area (--balance-areas), at most
    --limit targets (which keeps the balance: limit // 9 per area, the remainder to seeded areas)."""
    def empty_error(empty: list[str]) -> InputError:
        return InputError(f"{path}: --balance-areas: no target left in area(s) {', '.join(empty)} "
                          "after filtering; nothing to balance")
    keep = subsample([t.area_label for t in targets], AREAS, settings.balance_areas, settings.limit,
                     random.Random(settings.seed), empty_error, dropped)
    return [targets[i] for i in keep]


# -- pairs -------------------------------------------------------------------------------------------------

Pair = tuple[Target, Target, str]   # target, anchor, answer


def relation_pairs(candidates: list[list[Target]], task: str) -> tuple[list[Pair], int]:
    """Every pair a, b of an image's candidates with a.id < b.id (a the target, b the anchor) that the
    relation rule answers, in (image id, a.id, b.id) order; and the number of pairs it does not answer."""
    pairs: list[Pair] = []
    unanswered = 0
    for objects in candidates:
        boxes = [t.ann["bbox"] for t in objects]
        for i, a in enumerate(objects):
            for j in range(i + 1, len(objects)):
                answer = relation_of_boxes(boxes[i], boxes[j], task)
                if answer is None:
                    unanswered += 1
                else:
                    pairs.append((a, objects[j], answer))
    return pairs, unanswered


def sample_pairs(pairs: list[Pair], task: str, settings: CocoQuestionSettings, path: Path,
                 dropped: Counter) -> list[Pair]:
    """Seeded subsampling of one relation task's questions: equal counts per answer (--balance-answers) and
    at most --limit questions (keeping the balance: limit // 2 per answer, the remainder to a seeded one)."""
    def empty_error(empty: list[str]) -> InputError:
        return InputError(f"{path}: --balance-answers: no {task} question answers {', '.join(empty)} "
                          "after filtering; nothing to balance")
    keep = subsample([answer for _, _, answer in pairs], LABELS[task], settings.balance_answers, settings.limit,
                     random.Random(f"{settings.seed}:{task}:sample"), empty_error, dropped)
    return [pairs[i] for i in keep]


# -- questions -------------------------------------------------------------------------------------------

def _image_path(file_name: str, images: str | Path | None) -> str:
    return str(Path(images) / file_name) if images else file_name


def _row(qid: str, image: str, task: str, question: str, options: list[str], answer: str, target: dict,
         settings: CocoQuestionSettings, split: str) -> dict[str, Any]:
    """A record with the keys of `QuestionRecord(...).model_dump()` in its order, without the pydantic round trip,
    less the two that are None: `template` (the default template has no key, as in synthetic and benchmark
    records) and, for area records, `anchor`."""
    return {"id": qid, "image": image, "task": task, "question": question, "options": options,
            "answer": answer, "target": target, "source": settings.source, "split": split}


def iter_area_rows(targets: list[Target], task: str, settings: CocoQuestionSettings, split: str,
                   images: str | Path | None) -> Iterator[dict]:
    """One record per target; the correct option's position is balanced (seeded per task)."""
    rng = random.Random(f"{settings.seed}:{task}")
    slots = balanced_indices(len(targets), len(LABELS[task]), rng)
    for t, slot in zip(targets, slots):
        ann, img = t.ann, t.img
        answer = label_of_area(t.area_label, task)   # the target's area, projected: its box is not measured twice
        yield _row(f"coco-{img['id']}-{ann['id']}-{task}", _image_path(img["file_name"], images), task,
                   question_text(t.description), options_with_answer(task, answer, slot, rng), answer,
                   t.record(), settings, split)


def iter_relation_rows(pairs: list[Pair], task: str, settings: CocoQuestionSettings, split: str,
                       images: str | Path | None) -> Iterator[dict]:
    """One record per pair (target a, anchor b); the correct option's position is balanced (seeded per task)."""
    rng = random.Random(f"{settings.seed}:{task}")
    slots = balanced_indices(len(pairs), len(LABELS[task]), rng)
    for (a, b, answer), slot in zip(pairs, slots):
        img = a.img
        row = _row(f"coco-{img['id']}-{a.ann['id']}-{b.ann['id']}-{task}", _image_path(img["file_name"], images),
                   task, relation_question_text(task, a.description, b.description),
                   options_with_answer(task, answer, slot, rng), answer, a.record(), settings, split)
        row["anchor"] = b.record()
        yield row


@dataclass
class Questions:
    """The chosen targets, each relation task's chosen pairs, and the summary of the choice."""

    targets: list[Target]
    pairs: dict[str, list[Pair]]
    split: str
    summary: dict

    def rows(self, settings: CocoQuestionSettings, images: str | Path | None = None) -> Iterator[dict]:
        """Every record, task by task in the order of --tasks (a generator: train2017-size files are written
        without holding every record)."""
        for task in settings.tasks:
            if task in self.pairs:
                yield from iter_relation_rows(self.pairs[task], task, settings, self.split, images)
            else:
                yield from iter_area_rows(self.targets, task, settings, self.split, images)


class _LineEncoder:
    """`json.dumps(row, ensure_ascii=False)` for the rows built here, about twice as fast: an object dict
    (`target`, `anchor`) is shared by every record about that object, so it is encoded once. Keyed by the
    dict's id, which is stable while the `Questions` holding its `Target` lives (the whole write). The test
    suite compares the bytes with json.dumps."""

    def __init__(self) -> None:
        self._encode = _object_encoder()
        self._objects: dict[int, str] = {}

    def _value(self, value: Any) -> str:
        if type(value) is str:
            return _encode_string(value)
        if value is None:
            return "null"
        if type(value) is dict:
            text = self._objects.get(id(value))
            if text is None:
                text = self._objects[id(value)] = self._encode(value)
            return text
        return self._encode(value)

    def __call__(self, row: dict[str, Any]) -> str:
        return "{" + ", ".join(f"{_encode_string(key)}: {self._value(value)}" for key, value in row.items()) + "}"


def iter_area_lines(targets: list[Target], task: str, settings: CocoQuestionSettings, split: str,
                    images: str | Path | None, encoded: list[tuple[str, str, str, str]]) -> Iterator[str]:
    """`iter_area_rows` encoded as `_LineEncoder` encodes it, without building the rows: what is the same for
    every task (id head, image, question, target) is encoded once per target (`encoded`, from
    `_encoded_targets`), each option label once per task. The options are shuffled as encoded strings: the
    same `rng` calls on a list of the same length give the same order as `options_with_answer`."""
    rng = random.Random(f"{settings.seed}:{task}")
    labels = LABELS[task]
    slots = balanced_indices(len(targets), len(labels), rng)
    text = {label: _encode_string(label) for label in labels}
    answers = {area: label_of_area(area, task) for area in AREAS}
    others = {answer: [text[label] for label in labels if label != answer] for answer in set(answers.values())}
    task_text = _encode_string(task)
    tail = f', "source": {_encode_string(settings.source)}, "split": {_encode_string(split)}}}'
    # horizontal, vertical: `shuffle` of the two other labels is one draw, j = getrandbits(2) until j < 2,
    # and swaps them when j is 0; so the options of each (answer, slot, j) are joined once, here
    two_others = len(labels) == 3
    joined = {(answer, slot, j): _options_text(pair[::-1] if j == 0 else pair, slot, text[answer])
              for answer, pair in others.items() for slot in range(3) for j in (0, 1)} if two_others else {}
    getrandbits = rng.getrandbits
    for t, slot, (head, image, question, target) in zip(targets, slots, encoded):
        answer = answers[t.area_label]
        if task == "open":
            options = "[]"
        elif two_others:
            j = getrandbits(2)
            while j >= 2:
                j = getrandbits(2)
            options = joined[answer, slot, j]
        else:
            shown = others[answer][:]
            shuffle(shown, rng)   # the `rng` calls of `options_with_answer`'s shuffle, on encoded labels
            options = _options_text(shown, slot, text[answer])
        yield (f'{head}{task}", "image": {image}, "task": {task_text}, "question": {question}, '
               f'"options": {options}, "answer": {text[answer]}, "target": {target}{tail}')


def _options_text(others: list[str], slot: int, answer: str) -> str:
    """The options' JSON: the other labels (encoded, in their shuffled order) with the answer at `slot`."""
    return "[" + ", ".join([*others[:slot], answer, *others[slot:]]) + "]"


def _object_encoder() -> Callable[[dict], str]:
    """`json.JSONEncoder(ensure_ascii=False).encode` for the object dicts built here, with the C encoder made
    once rather than at every call (a quarter of the time of encoding 600k targets). Without the C
    accelerator, the plain encoder."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover
        return json.JSONEncoder(ensure_ascii=False).encode
    # the arguments JSONEncoder.iterencode passes for ensure_ascii=False and the other defaults
    encode = make({}, json.JSONEncoder().default, _encode_string, None, ": ", ", ", False, False, True)
    return lambda value: "".join(encode(value, 0))


def _orjson_floats_as_repr() -> bool:
    """Whether this orjson writes floats as json.dumps does (repr), except for 1e-10 < |x| < 1e-4, which orjson
    writes as "0.00001" and "1e-7" where repr writes "1e-05" and "1e-07" (orjson 3.13). A version that writes
    the probes otherwise is not used for the targets."""
    probes = (0.0, -0.0, 0.1, 1 / 3, 123.45, 640.0, 1.5e-4, 1e-4, 1e-10, 5e-324, 1e15, 1e16, 1.5e17, 1e22, 1.5e300)
    return all(orjson.dumps(x) == repr(x).encode() for x in probes)


_ORJSON_FLOATS_AS_REPR = _orjson_floats_as_repr()
# strings orjson and json.dumps(ensure_ascii=False) write alike, with none of the characters the rewrite of
# orjson's compact separators (`_encoded_records`) must not meet inside a string
_PLAIN_STRING = re.compile(r'[^",:{}\[\]\\\x00-\x1f]*')
_CHUNK = 65_536   # records per orjson call: bounds the transient text


def _encoded_records(targets: list[Target], attributes: list[str]) -> list[str] | None:
    """`json.dumps(t.record(), ensure_ascii=False)` of every target, by orjson in under half the time (most of
    json's goes to repr of the floats); None where the two could differ, and the caller encodes as json does.

    orjson writes compact JSON: the spaces json.dumps puts after each "," and ":" are put back by a replace,
    right since every string (category, attribute names and values: all in the description) is plain. Then
    differ only: ints beyond 64 bits (orjson refuses them), NaN and infinity (only `area` is not checked when
    the file is read; orjson writes null) and floats with 1e-10 < |x| < 1e-4 (seen in orjson's text)."""
    if not _ORJSON_FLOATS_AS_REPR:
        return None
    strings = {t.description for t in targets}.union(attributes)
    if not all(_PLAIN_STRING.fullmatch(s) for s in strings):
        return None
    encoded: list[str] = []
    for start in range(0, len(targets), _CHUNK):
        records = [t.record() for t in targets[start:start + _CHUNK]]
        areas = [r["area"] for r in records]
        if not ({type(a) for a in areas} <= {int, float, type(None)}
                and math.isfinite(sum(a for a in areas if type(a) is float))):  # no NaN, no infinity
            return None
        try:
            text = orjson.dumps(records)
        except orjson.JSONEncodeError:
            return None
        if b"0.0000" in text or b"e-" in text:   # maybe a float that repr writes otherwise
            return None
        # b'[{...},{...}]': the records are flat (no dict inside), so "},{" is only ever between two records
        text = text.replace(b",", b", ").replace(b":", b": ").decode()
        encoded += ["{" + record + "}" for record in text[2:-2].split("}, {")]
    return encoded


def _encoded_targets(targets: list[Target], images: str | Path | None,
                     attributes: list[str]) -> list[tuple[str, str, str, str]]:
    """Per target: the start of a record's line up to the task in its id (ids are ints, so the id needs no
    escaping), and its image, question and `target` as JSON."""
    records = _encoded_records(targets, attributes)
    if records is None:
        encode = _object_encoder()
        records = [encode(t.record()) for t in targets]

    @functools.cache   # an image has several targets, a description many
    def image_json(file_name: str) -> str:
        return _encode_string(_image_path(file_name, images))

    @functools.cache
    def question_json(description: str) -> str:
        return _encode_string(question_text(description))

    return [(f'{{"id": "coco-{t.img["id"]}-{t.ann["id"]}-', image_json(t.img["file_name"]),
             question_json(t.description), record) for t, record in zip(targets, records)]


def _lines(chosen: Questions, settings: CocoQuestionSettings, images: str | Path | None) -> Iterator[str]:
    """Every record's line, in the order of `Questions.rows`: area tasks by `iter_area_lines`, relation
    tasks by `_LineEncoder`."""
    encoder = _LineEncoder()
    encoded = None
    for task in settings.tasks:
        if task in chosen.pairs:
            yield from map(encoder, iter_relation_rows(chosen.pairs[task], task, settings, chosen.split, images))
        else:
            if encoded is None:
                encoded = _encoded_targets(chosen.targets, images, settings.attributes)
            yield from iter_area_lines(chosen.targets, task, settings, chosen.split, images, encoded)


def _relation_summary(selection: Selection, chosen: dict[str, list[Pair]], per_task: dict[str, dict]) -> dict:
    return {
        "candidates": sum(len(objects) for objects in selection.candidates),
        "images_with_pairs": len(selection.candidates),
        "pairs": sum(len(objects) * (len(objects) - 1) // 2 for objects in selection.candidates),
        "tasks": {task: {**per_task[task], "questions": len(pairs),
                         "answers": {label: sum(1 for p in pairs if p[2] == label) for label in LABELS[task]}}
                  for task, pairs in chosen.items()},
    }


# what to do with a record whose image is not in the images folder: keep it (the folder is checked by whoever
# reads the file; the library's default), refuse the file (one line), or drop its image's objects
MISSING_IMAGES = ("keep", "error", "skip")


def _image_files(targets: Iterable[Target], images: Path) -> dict[str, str]:
    """The image path of each distinct image of `targets`, with its file_name (strings: 118k Paths cost more
    than the folder's listing)."""
    folder = str(images)
    return {os.path.join(folder, name): name for name in dict.fromkeys(t.img["file_name"] for t in targets)}


def _check_images_folder(images: Path, path: Path) -> None:
    if not images.is_dir():
        raise InputError(f"{images}: folder not found (--images); expected the folder of the images listed in "
                         f"{path.name}")


def _refuse_missing(images: Path, path: Path, files: dict[str, str]) -> None:
    """One line: how many of the images that get questions are not in the folder, and the first one."""
    missing = missing_files(files)
    if missing:
        raise InputError(f"{images}: {count_line(len(missing), len(files))} images listed in {path.name} are "
                         f"missing (first: {files[missing[0]]}); expected the COCO images folder (or --skip-missing)")


def _drop_missing(selection: Selection, images: Path) -> int:
    """Drop the targets and relation candidates whose image is not in the folder, before balance and limit
    (so both hold over what is written); counts the targets dropped; returns the number of images."""
    files = _image_files(itertools.chain(selection.targets, *selection.candidates), images)
    absent = {files[p] for p in missing_files(files)}
    if absent:
        kept = [t for t in selection.targets if t.img["file_name"] not in absent]
        selection.dropped["missing_image"] += len(selection.targets) - len(kept)
        selection.targets = kept
        selection.candidates = [c for c in selection.candidates if c[0].img["file_name"] not in absent]
    return len(absent)


def select(instances: str | Path, settings: CocoQuestionSettings, images: str | Path | None = None,
           missing: str = "keep") -> Questions:
    """The targets and pairs of an instances file under `settings`, the split name, and a summary. With an
    `images` folder and `missing` "error" or "skip", the images that get questions are looked for there
    (`MISSING_IMAGES`)."""
    settings.check()
    if missing not in MISSING_IMAGES:
        raise ValueError(f"missing: expected one of {MISSING_IMAGES}, got {missing!r}")
    path = Path(instances)
    coco = load_instances(path)
    split = settings.split or split_of(path)
    checked = Path(images) if images is not None and missing != "keep" else None
    if checked is not None:
        _check_images_folder(checked, path)
    selection = select_objects(coco, settings, path)
    dropped = selection.dropped
    images_missing = _drop_missing(selection, checked) if checked is not None and missing == "skip" else 0
    candidates = len(selection.targets)
    targets = balance_and_limit(selection.targets, settings, path, dropped) if settings.area_tasks else []
    chosen: dict[str, list[Pair]] = {}
    per_task: dict[str, dict] = {}
    for task in settings.relation_tasks:
        pairs, unanswered = relation_pairs(selection.candidates, task)
        task_dropped: Counter = Counter(unanswered=unanswered)
        chosen[task] = sample_pairs(pairs, task, settings, path, task_dropped)
        per_task[task] = {"dropped": {k: task_dropped.get(k, 0) for k in ("unanswered", "balance", "limit")}}
    if checked is not None and missing == "error":
        asked = itertools.chain(targets, *((a, b) for pairs in chosen.values() for a, b, _ in pairs))
        _refuse_missing(checked, path, _image_files(asked, checked))
    per_area = Counter(t.area_label for t in targets)
    summary = {
        "instances": str(path),
        "split": split,
        "images": len(coco.imgs),
        "images_with_targets": len({t.img["id"] for t in targets}),
        "annotations": len(coco.anns),
        "dropped": {reason: dropped.get(reason, 0) for reason in ("outside", "crowd", "repeated", "small", "ambiguous",
                                                                   "missing_image", "balance", "limit")},
        "images_missing": images_missing,   # images dropped by --skip-missing (their targets: missing_image)
        "candidates": candidates,
        "targets": len(targets),
        "targets_per_area": {area: per_area.get(area, 0) for area in AREAS},
        "questions": {task: len(chosen[task]) if task in chosen else len(targets) for task in settings.tasks},
        "settings": asdict(settings),
    }
    if chosen:
        summary["relations"] = _relation_summary(selection, chosen, per_task)
    return Questions(targets, chosen, split, summary)


def coco_questions(instances: str | Path, settings: CocoQuestionSettings | None = None,
                   images: str | Path | None = None) -> tuple[list[QuestionRecord], dict]:
    """Question records (validated) from an instances file, and a summary of what was kept and dropped."""
    settings = settings or CocoQuestionSettings()
    with _no_gc():
        chosen = select(instances, settings)
        return [QuestionRecord.model_validate(row) for row in chosen.rows(settings, images)], chosen.summary


def _relative_to_root(images: Path, out: Path) -> str:
    """A relative --images folder (given from the working directory) rewritten relative to the question
    file's dataset root, where `resolve_image` looks for relative image paths."""
    return os.path.relpath(images.resolve(), dataset_root(out))


def write_coco_questions(instances: str | Path, out: str | Path, images: str | Path | None = None,
                         settings: CocoQuestionSettings | None = None, missing: str = "keep") -> dict:
    """Build the questions and write them atomically to `out` (JSONL); returns the summary. `missing`: what
    to do with images not in the `images` folder (`MISSING_IMAGES`); nothing is written when refused."""
    settings = settings or CocoQuestionSettings()
    folder = images   # as given (from the working directory): where the images are looked for
    if images is not None and not Path(images).is_absolute():
        images = _relative_to_root(Path(images), Path(out))
    with _no_gc():
        chosen = select(instances, settings, folder, missing)
        if chosen.summary["images_missing"] and not any(chosen.summary["questions"].values()):
            raise InputError(f"{folder}: none of the images listed in {Path(instances).name} that would get "
                             "questions is there; expected the COCO images folder")
        write_lines(Path(out), _lines(chosen, settings, images))
    chosen.summary["out"] = str(out)
    return chosen.summary
