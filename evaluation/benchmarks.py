"""Question records (task `mc`) from the released files of four public spatial-reasoning benchmarks: VSR,
CV-Bench, What'sUp and BLINK. The layouts, with their sources, are in docs/benchmark-formats.md.

Every importer gives the same kind of record: `task: "mc"`, the benchmark's own `options` and correct
`answer`, `source` = the benchmark, an absolute `image` path, and `benchmark: {"name", "categories",
"original"}`, whose categories `evaluation.score.benchmark_metrics` reports accuracy by. Rows whose image is
missing are refused (one line, nothing written) unless `skip_missing`; the out file is written atomically and
the same input gives the same bytes. No bpy, no torch.
"""
from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, get_args

from blender_scenes.errors import InputError
from blender_scenes.files import atomic_write_bytes
from blender_scenes.labels import LABELS, MC_POSITIONS
from blender_scenes.questions import Benchmark, balanced_indices, mc_problem, shuffle, write_jsonl

from .imagefiles import image_kind, missing_files

BENCHMARKS = get_args(Benchmark)

# VSR's relation -> meta-category table, verbatim from cambridgeltl/visual-spatial-reasoning
# analysis_scripts/rel_meta_category_dict.txt @ b27a0af0ee1462d2b6b92c8c83e869d9254a241a (read by
# analysis_scripts/eval_compute_acc_by_rel_meta_cat.py). "among" is listed twice: the official script builds a
# dict line by line, so the last line wins (Unallocated); a relation missing from it ("congruent") is "none".
VSR_META_CATEGORY_TABLE = """\
Adjacency: adjacent to, alongside, at the side of, at the right side of, at the left side of, attached to, at the back of, ahead of, against, at the edge of
Directional: off, past, toward, down, deep down, up, away from, along, around, from, into, to, across, across from, through, down from
Orientation: facing, facing away from, parallel to, perpendicular to
Projective: on top of, beneath, beside, behind, left of, right of, under, in front of, below, above, over, in the middle of
Proximity: by, close to, near, far from, far away from
Topological: connected to, detached from, has as a part, part of, contains, within, at, on, in, with, surrounding, among, consists of, out of, between, inside, outside, touching
Unallocated: beyond, next to, opposite to, after, among, enclosed by
"""  # noqa: E501


def _meta_categories(table: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in table.splitlines():
        if line.strip():
            category, relations = line.split(": ", 1)
            for relation in relations.split(","):
                out[relation.strip()] = category.strip()   # last wins, as the official script's dict
    return out


VSR_META_CATEGORY = _meta_categories(VSR_META_CATEGORY_TABLE)
VSR_NO_CATEGORY = "none"

#: VSR: the caption becomes a true/false question about the image
VSR_QUESTION = 'Is this statement about the image true or false? "{caption}"'
VSR_OPTIONS = ["true", "false"]
#: What'sUp: the captions are the options
WHATSUP_QUESTION = "Which caption describes the image?"

_LETTER = re.compile(rf"^\(([{''.join(MC_POSITIONS)}])\)$")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,150}")   # a written image's name: no folder, no dot first


@dataclass
class _Row:
    """One candidate record: where it came from (for messages), the record, and its image (a path to check,
    or bytes to write beside the out file)."""
    where: str
    record: dict[str, Any]
    candidates: list[Path] = field(default_factory=list)   # where its image may be, in order (checked at once)
    image_path: Path | None = None   # the first candidate that is there (else the first), absolute
    image_bytes: bytes | None = None
    image_name: str | None = None   # file name (without extension) for written bytes


def _bad(where: str, key: str, expected: str, got: Any) -> InputError:
    text = repr(got)
    return InputError(f"{where}: field '{key}': expected {expected}, got {text[:80]}{'...' if len(text) > 80 else ''}")


def _string(row: dict, key: str, where: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _bad(where, key, "a non-empty string", value)
    return value


def _record(name: str, rid: str, split: str, question: str, options: list[str], answer: str,
            categories: dict[str, str], original: dict[str, Any], where: str) -> dict[str, Any]:
    problem = mc_problem(options, answer)
    if problem:
        raise InputError(f"{where}: {problem}")
    return {"id": rid, "image": "", "task": "mc", "question": question, "options": options, "answer": answer,
            "source": name, "split": split,
            "benchmark": {"name": name, "categories": categories, "original": original}}


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict]]:
    try:
        fh = path.open(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found (expected a JSONL file)") from None
    with fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:   # a line: its column is the file's
                raise InputError(f"{path}:{lineno}:{err.colno}: not valid JSON ({err.msg}); expected one object per "
                                 "line") from None
            except ValueError as err:   # an integer of more than 4300 digits
                raise InputError(f"{path}:{lineno}: not valid JSON ({err}); expected one object per line") from None
            if not isinstance(row, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            yield lineno, row


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(f"{path}: reading parquet needs the `pyarrow` package (pip install 'scenes2real[hub]'), "
                         "or give the benchmark's .jsonl file") from None
    if not path.is_file():
        raise InputError(f"{path}: file not found (expected a parquet file)")
    try:
        table = pq.read_table(path)
    except Exception as err:   # pyarrow raises several kinds for a file that is not parquet
        raise InputError(f"{path}: not a readable parquet file ({err})") from None
    for i, row in enumerate(table.to_pylist()):
        yield i, row


def _candidates(images: Path | None, *names: str) -> list[Path]:
    """`images/name` for each name: where a row's image may be, the first that exists wins."""
    base = Path(images) if images is not None else Path(".")
    return [base / n for n in names if n]


def _image_struct(value: Any, where: str, key: str) -> bytes | None:
    """The bytes of a `datasets` Image column value ({bytes, path}); None when there are none."""
    if value is None:
        return None
    if not isinstance(value, dict) or "bytes" not in value:
        raise _bad(where, key, "an image struct {bytes, path}", type(value).__name__)
    data = value["bytes"]
    return bytes(data) if data else None


def _extension(data: bytes, where: str) -> str:
    ext = image_kind(data)
    if ext is not None:
        return ext
    raise InputError(f"{where}: field 'image': bytes of an unknown image format (expected PNG, JPEG, GIF, BMP, WebP)")


def _letter_answer(row: dict, choices: list[str], where: str) -> str:
    answer = row.get("answer")
    match = _LETTER.match(answer) if isinstance(answer, str) else None
    if not match or MC_POSITIONS.index(match.group(1)) >= len(choices):
        raise _bad(where, "answer", f"a letter in parentheses, (A) to ({MC_POSITIONS[len(choices) - 1]})", answer)
    return choices[MC_POSITIONS.index(match.group(1))]


def _choices(row: dict, where: str) -> list[str]:
    choices = row.get("choices")
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        raise _bad(where, "choices", "a list of strings", choices)
    return choices


# ----------------------------------------------------------------------------------------------------- VSR

def vsr_rows(path: Path, images: Path | None) -> list[_Row]:
    """VSR data/splits/{random,zeroshot}/{train,dev,test}.jsonl (or data_files/*.jsonl): one true/false question
    per caption; label 1 = the caption is true of the image."""
    split = path.stem
    out: list[_Row] = []
    for lineno, row in _jsonl_rows(path):
        where = f"{path}:{lineno}"
        image, caption, relation = (_string(row, k, where) for k in ("image", "caption", "relation"))
        label = row.get("label")
        if label not in (0, 1) or isinstance(label, bool):
            raise _bad(where, "label", "0 or 1", label)
        categories = {"relation": relation, "meta_category": VSR_META_CATEGORY.get(relation, VSR_NO_CATEGORY)}
        record = _record("vsr", f"vsr-{split}-{lineno:05d}", split, VSR_QUESTION.format(caption=caption),
                         list(VSR_OPTIONS), "true" if label == 1 else "false", categories,
                         {"line": lineno, "image": image, "caption": caption, "label": label}, where)
        out.append(_Row(where, record, candidates=_candidates(images, image)))
    return out


# ------------------------------------------------------------------------------------------------ CV-Bench

#: CV-Bench Relation choices that are exactly the labels of one of our relation tasks
RELATION_CHOICES = {frozenset(LABELS[task]): task for task in ("left_right", "above_below")}


def cvbench_rows(path: Path, images: Path | None) -> list[_Row]:
    """CV-Bench test_2d / test_3d (.jsonl: images under --images by `filename`; .parquet: images embedded).
    The answer "(C)" indexes `choices`; categories task, type, source (the official score is per source). A row
    whose choices are left/right or above/below becomes a `left_right` / `above_below` question (our relation
    parser reads it); every other row is `mc`."""
    parquet = path.suffix == ".parquet"
    out: list[_Row] = []
    for i, row in (_parquet_rows(path) if parquet else _jsonl_rows(path)):
        where = f"{path}: row {i}" if parquet else f"{path}:{i}"
        question, task, kind, source = (_string(row, k, where) for k in ("question", "task", "type", "source"))
        idx = row.get("idx")
        if not isinstance(idx, int) or isinstance(idx, bool) or idx < 0:
            raise _bad(where, "idx", "an integer >= 0", idx)
        choices = _choices(row, where)
        answer = _letter_answer(row, choices, where)
        rid = f"cvbench-{kind.lower()}-{idx:05d}"
        original = {"idx": idx, "answer": row["answer"], "filename": row.get("filename")}
        record = _record("cvbench", rid, "test", question, list(choices), answer,
                         {"task": task, "type": kind, "source": source}, original, where)
        relation = RELATION_CHOICES.get(frozenset(c.strip().lower() for c in choices))
        if relation:   # a Relation row whose choices are our relation labels: asked and read as that task
            record.update(task=relation, answer=answer.strip().lower(), options=[c.strip().lower() for c in choices])
        if parquet:
            out.append(_Row(where, record, image_bytes=_image_struct(row.get("image"), where, "image"),
                                 image_name=rid))
        else:
            filename = _string(row, "filename", where)
            fallback = filename[len("img/"):] if filename.startswith("img/") else ""
            out.append(_Row(where, record, candidates=_candidates(images, filename, fallback)))
    return out


# ------------------------------------------------------------------------------------------------ What'sUp

def _whatsup_kind(stem: str, rows: list) -> str:
    """controlled_a, controlled_b, coco or vg, from the file name (as the official loader's dataset names)."""
    if all(isinstance(r, dict) for r in rows):
        return "controlled_b" if "clevr" in stem else "controlled_a"
    if "coco" in stem:
        return "coco"
    if "vg" in stem:
        return "vg"
    raise InputError(f"{stem}: cannot tell COCO from Visual Genome rows: expected the released file name "
                     "(coco_qa_one_obj.json, coco_qa_two_obj.json, vg_qa_one_obj.json, vg_qa_two_obj.json)")


def _whatsup_preposition(kind: str, two: bool, image_path: str, caption: str) -> str:
    """The preposition category, derived as whatsup_vlms dataset_zoo/aro_datasets.py does."""
    if kind.startswith("controlled"):
        for key, name in (("left_of", "left_of"), ("right_of", "right_of")):
            if key in image_path:
                return name
        if kind == "controlled_a":
            return "on" if "_on_" in image_path else "under"
        return "in-front_of" if "_in-front_of_" in image_path else "behind"
    if not two:
        return caption.split()[-1]
    if "left of" in caption:
        return "left"
    if "right of" in caption:
        return "right"
    if kind == "coco":
        return "above" if "above" in caption else "below"
    if "front of" in caption:
        return "front"
    return "behind" if "behind" in caption else "top"


def whatsup_rows(path: Path, images: Path | None) -> list[_Row]:
    """What'sUp controlled_{images,clevr}_dataset.json ({image_path, caption_options}) and
    {coco,vg}_qa_{one,two}_obj.json ([image_id, correct, wrong]); the first caption is the correct one. The
    options are shuffled after any dropped row is gone (`balance_whatsup`)."""
    from blender_scenes.files import read_json

    data = read_json(path, "a What'sUp annotation file (a JSON list)")
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of rows, got {type(data).__name__}")
    kind = _whatsup_kind(path.stem, data)
    two = "two" in path.stem
    out: list[_Row] = []
    for i, row in enumerate(data):
        where = f"{path}: row {i}"
        if kind.startswith("controlled"):
            if not isinstance(row, dict):
                raise _bad(where, "row", "an object {image_path, caption_options}", row)
            image_path = _string(row, "image_path", where)
            captions = row.get("caption_options")
            if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
                raise _bad(where, "caption_options", "a list of strings", captions)
            relative = image_path[len("data/"):] if image_path.startswith("data/") else image_path
            image = _candidates(images, relative, Path(image_path).name)
            original = {"row": i, "image_path": image_path}
        else:
            if not (isinstance(row, list) and len(row) == 3 and all(isinstance(c, str) for c in row[1:])
                    and isinstance(row[0], (int, str)) and not isinstance(row[0], bool)):
                raise _bad(where, "row", "[image_id, correct caption, wrong caption]", row)
            captions = list(row[1:])
            name = f"{str(row[0]).zfill(12) if kind == 'coco' else row[0]}.jpg"
            folder = "val2017" if kind == "coco" else "vg_images"
            image = _candidates(images, name, f"{folder}/{name}")
            image_path = name
            original = {"row": i, "image_id": row[0]}
        if not captions:
            raise _bad(where, "caption_options", "at least 2 captions", captions)
        categories = {"subset": path.stem,
                      "preposition": _whatsup_preposition(kind, two, image_path, captions[0])}
        record = _record("whatsup", f"whatsup-{path.stem}-{i:05d}", "test", WHATSUP_QUESTION, list(captions),
                         captions[0], categories, original, where)
        out.append(_Row(where, record, candidates=image))
    return out


def balance_whatsup(records: list[dict], seed: int) -> None:
    """Shuffle each record's options (first = correct, as released) so that the correct option's position is
    balanced over the file: per option count k, positions 0..k-1 each n/k times within 1 (seeded)."""
    rng = random.Random(seed)
    by_k: dict[int, list[dict]] = {}
    for record in records:
        by_k.setdefault(len(record["options"]), []).append(record)
    for k in sorted(by_k):
        group = by_k[k]
        for record, position in zip(group, balanced_indices(len(group), k, rng)):
            correct, others = record["options"][0], record["options"][1:]
            shuffle(others, rng)
            others.insert(position, correct)
            record["options"] = others


# ----------------------------------------------------------------------------------------------------- BLINK

def blink_rows(path: Path, images: Path | None) -> list[_Row]:
    """BLINK <Sub_Task>/val-00000-of-00001.parquet: one image question per row (image_1 embedded), the answer
    "(A)" indexing `choices`. The test split's answers are hidden, so a file with hidden answers is refused."""
    config = path.parent.name
    out: list[_Row] = []
    for i, row in _parquet_rows(path):
        where = f"{path}: row {i}"
        if row.get("answer") == "hidden":
            raise InputError(f"{path}: the answers of this file are hidden (BLINK's test split is scored on EvalAI); "
                             "expected a val file, e.g. Spatial_Relation/val-00000-of-00001.parquet")
        question, idx = _string(row, "question", where), _string(row, "idx", where)
        for key in ("image_2", "image_3", "image_4"):
            if row.get(key) is not None:
                raise _bad(where, key, "no second image (multi-image questions are not supported)", "an image")
        choices = _choices(row, where)
        answer = _letter_answer(row, choices, where)
        sub_task = row.get("sub_task") if isinstance(row.get("sub_task"), str) and row.get("sub_task") else config
        split = idx.split("_", 1)[0] if "_" in idx else path.stem.split("-", 1)[0]
        rid = f"blink-{idx}"
        record = _record("blink", rid, split, question, list(choices), answer, {"sub_task": sub_task},
                         {"idx": idx, "answer": row["answer"]}, where)
        out.append(_Row(where, record, image_bytes=_image_struct(row.get("image_1"), where, "image_1"),
                             image_name=idx))
    return out


# -------------------------------------------------------------------------------------------------- writing

def write_benchmark_questions(name: str, file: str | Path, out: str | Path, images: str | Path | None = None,
                              skip_missing: bool = False, seed: int = 0) -> dict:
    """Import one released file of benchmark `name` into the question file `out` (atomic); the summary."""
    path, out = Path(file), Path(out)
    images = Path(images) if images is not None else None
    if name == "vsr":
        rows = vsr_rows(path, images)
    elif name == "cvbench":
        rows = cvbench_rows(path, images)
    elif name == "whatsup":
        rows = whatsup_rows(path, images)
    elif name == "blink":
        rows = blink_rows(path, images)
    else:
        raise InputError(f"unknown benchmark {name!r}; expected one of {', '.join(BENCHMARKS)}")
    seen: dict[str, str] = {}
    for row in rows:
        rid = row.record["id"]
        if rid in seen:
            raise InputError(f"{row.where}: field 'id': {rid!r} is also the id of {seen[rid]} (expected unique rows)")
        seen[rid] = row.where
    absent = set(missing_files(c for r in rows for c in r.candidates))   # one listing per folder, not a stat a file
    missing = []
    for r in rows:
        found = [c for c in r.candidates if c not in absent]
        if r.candidates:
            r.image_path = (found or r.candidates)[0].resolve()
        if not found and r.image_bytes is None:
            missing.append(r)
    if missing and not skip_missing:
        first = missing[0]
        what = first.image_path if first.image_path is not None else "no image bytes"
        raise InputError(f"{path}: {len(missing)} of {len(rows)} rows have no image (first: {first.where}: {what}); "
                         "pass --images with the benchmark's image folder, or --skip-missing to keep the rest")
    dropped = {id(r) for r in missing}
    kept = [r for r in rows if id(r) not in dropped]
    if not kept:
        raise InputError(f"{path}: no rows with an image left to write")
    if name == "whatsup":
        balance_whatsup([r.record for r in kept], seed)
    for row in kept:   # every name checked before the first image is written
        if row.image_bytes is not None and not _SAFE_NAME.fullmatch(row.image_name or ""):
            raise _bad(row.where, "idx" if name == "blink" else "type",
                       "letters, digits, '_', '-' and '.' (it names the image file written)", row.image_name)
    written = 0
    image_dir = out.resolve().parent / "images" / name
    for row in kept:
        if row.image_bytes is not None:
            target = image_dir / f"{row.image_name}.{_extension(row.image_bytes, row.where)}"
            if not (target.is_file() and target.read_bytes() == row.image_bytes):
                atomic_write_bytes(target, row.image_bytes)
                written += 1
            row.record["image"] = str(target)
        else:
            row.record["image"] = str(row.image_path)
    write_jsonl(out, (r.record for r in kept))
    categories: dict[str, Counter] = {}
    for row in kept:
        for key, value in row.record["benchmark"]["categories"].items():
            categories.setdefault(key, Counter())[value] += 1
    return {"benchmark": name, "file": str(path), "out": str(out), "records": len(kept),
            "dropped_missing_image": len(missing), "images_written": written,
            "correct_position": dict(sorted(Counter(MC_POSITIONS[r.record["options"].index(r.record["answer"])]
                                                    for r in kept).items())),
            "categories": {k: dict(sorted(c.items())) for k, c in sorted(categories.items())}}
