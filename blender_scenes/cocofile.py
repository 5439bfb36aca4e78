"""The one reader of COCO instances files: parse, validate the fields we read (one InputError naming the file
and the first bad field), and index with pycocotools' `COCO` once. Used by the COCO question builder and the
audit. No bpy, no torch."""
from __future__ import annotations

import contextlib
import io
import itertools
import json
import math
import re
from operator import itemgetter
from pathlib import Path

import orjson
from pycocotools.coco import COCO

from .errors import InputError

# Masks are never read here, and polygon numbers are three quarters of train2017's 450 MB: their values
# are replaced by null before parsing (about 3x faster, a third of the memory). A value the pattern does not
# recognise is simply parsed as usual; a key inside a JSON string cannot match (its quotes are escaped).
_MASK_VALUE = re.compile(r'"segmentation"\s*:\s*(?:\[\s*(?:\[[^\[\]]*\]\s*,?\s*)*\]|\{[^{}]*\})')

# the pattern on the file's bytes (no decoding; brackets and braces never occur inside a multi-byte UTF-8
# character), written to run 3.5x faster: a polygon's numbers as [^\]] (a one-byte test, where [^\[\]] is a set
# lookup) and possessive repeats (nothing to backtrack into). On COCO's shapes it replaces what the text
# pattern replaces. Elsewhere (values nested deeper, brackets in strings) it replaces a whole value too or
# leaves a stray bracket or brace; then, as where it misses what the text pattern matches (non-ASCII
# whitespace), the result is not JSON, orjson refuses it and the text is read with the pattern above
_MASK_BYTES = re.compile(rb'"segmentation"\s*:\s*(?:\[\s*(?:\[[^\]]*+\]\s*,?\s*)*+\]|\{[^}]*+\})')


def _parse(text: str):
    """Parsed by orjson (about 2.5x faster than json, the same values); what orjson refuses and json reads
    (NaN, Infinity, lone surrogates) goes to json, so the result and the errors are json's. One difference:
    orjson reads an integer of 2**64 or more as a float, so an id that large is refused as not an integer."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _is_number(value) -> bool:
    """An int or a finite float (json reads NaN and Infinity; bools are not numbers here)."""
    return type(value) is int or (type(value) is float and math.isfinite(value))


#: the largest image side read (pixels): far above any camera; with the least side of 1 px and the box bound
#: below, no label arithmetic (x + w / 2, 3 * cx / W) can overflow a float
MAX_IMAGE_SIDE = 1_000_000
#: the largest magnitude of a box number: far beyond any image, so a box a tool wrote partly or wholly outside
#: its image is read (the question builder drops those with no overlap), while a value only a broken file
#: holds (1e308) is refused
MAX_BOX_VALUE = 1e18


def _is_side(value) -> bool:
    """An image width or height: a number of pixels in 1..MAX_IMAGE_SIDE (bools are not numbers)."""
    return _is_number(value) and 1 <= value <= MAX_IMAGE_SIDE


def _is_box(bbox) -> bool:
    return (type(bbox) is list and len(bbox) == 4 and all(map(_is_number, bbox))
            and bbox[2] >= 0 and bbox[3] >= 0 and all(-MAX_BOX_VALUE <= v <= MAX_BOX_VALUE for v in bbox))


def _is_id(value) -> bool:
    return type(value) is int


def _fail(path: Path, where: str, expected: str, value) -> InputError:
    try:
        shown = repr(value)
    except ValueError:   # an int too long for Python to write out
        shown = "a huge integer"
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return InputError(f"{path}: field '{where}': expected {expected}, got {shown}")


def _all_numbers(values: list) -> bool:
    """`_is_number` of every value, over the list at once: ints and floats only, with a finite sum (NaN or
    infinity makes it NaN or infinite; a sum too large for a float only sends the data to the item by item
    check)."""
    try:
        return set(map(type, values)) <= {int, float} and math.isfinite(sum(values))
    except OverflowError:   # an int sum too large for a float
        return False


def _passes_at_a_glance(data) -> bool:
    """True only for data that `validate_instances` accepts, checked a whole list at a time (two thirds of the
    time of its item by item check on train2017); False sends the data to that check, which names the first
    bad field."""
    try:
        if type(data) is not dict:
            return False
        categories, images, annotations = data["categories"], data["images"], data["annotations"]
        ids = {}
        for key, items in (("categories", categories), ("images", images), ("annotations", annotations)):
            if type(items) is not list or not set(map(type, items)) <= {dict}:
                return False
            ids[key] = list(map(itemgetter("id"), items))
            if not set(map(type, ids[key])) <= {int} or len(set(ids[key])) != len(items):
                return False
        if not all(type(cat.get("name")) is str and cat["name"].strip() for cat in categories):
            return False
        sizes = [img.get("width") for img in images] + [img.get("height") for img in images]
        if not _all_numbers(sizes) or min(sizes, default=1) < 1 or max(sizes, default=1) > MAX_IMAGE_SIDE:
            return False
        if not {type(img.get("file_name")) for img in images} <= {str}:
            return False
        boxes = list(map(itemgetter("bbox"), annotations))
        if not set(map(type, boxes)) <= {list} or not set(map(len, boxes)) <= {4}:
            return False
        numbers = list(itertools.chain.from_iterable(boxes))   # x, y, w, h, x, y, ...
        if (not _all_numbers(numbers) or min(numbers[2::4], default=0) < 0 or min(numbers[3::4], default=0) < 0
                or min(numbers, default=0) < -MAX_BOX_VALUE or max(numbers, default=0) > MAX_BOX_VALUE):
            return False
        return (set(map(itemgetter("image_id"), annotations)) <= set(ids["images"])
                and set(map(itemgetter("category_id"), annotations)) <= set(ids["categories"])
                and {ann.get("iscrowd", 0) for ann in annotations} <= {0, 1})
    except (KeyError, TypeError):   # a list or a field missing, an unhashable id
        return False


def validate_instances(data, path: Path) -> None:
    """Check the parts of a COCO instances file this module reads; one error naming the first bad field."""
    if _passes_at_a_glance(data):
        return
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object with 'images', 'annotations', 'categories' "
                         "(a COCO instances file)")
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise InputError(f"{path}: field '{key}': missing (expected a COCO instances file)")
        if not isinstance(data[key], list):
            raise _fail(path, key, "a list", type(data[key]).__name__)
    for i, cat in _with_unique_ids(data, "categories", path):
        if not isinstance(cat.get("name"), str) or not cat["name"].strip():
            raise _fail(path, f"categories[{i}].name", "a category name", cat.get("name"))
    for i, img in _with_unique_ids(data, "images", path):
        for key in ("width", "height"):
            value = img.get(key)
            if not _is_side(value):
                raise _fail(path, f"images[{i}].{key}", f"a number of pixels in 1..{MAX_IMAGE_SIDE}", value)
        if not isinstance(img.get("file_name"), str):
            raise _fail(path, f"images[{i}].file_name", "a file name", img.get("file_name"))
    category_ids = {c["id"] for c in data["categories"]}
    image_ids = {img["id"] for img in data["images"]}

    def known(value, ids: set) -> bool:   # a list or an object is no id (and is unhashable)
        return isinstance(value, int | float | str) and value in ids

    for i, ann in _with_unique_ids(data, "annotations", path):
        bbox = ann.get("bbox")
        if not _is_box(bbox):
            raise _fail(path, f"annotations[{i}].bbox", "4 finite numbers [x, y, w, h] with w, h >= 0, "
                        "each in -1e18..1e18", bbox)
        if not known(ann.get("image_id"), image_ids):
            raise _fail(path, f"annotations[{i}].image_id", "the id of an image in 'images'", ann.get("image_id"))
        if not known(ann.get("category_id"), category_ids):
            raise _fail(path, f"annotations[{i}].category_id", "the id of a category in 'categories'",
                        ann.get("category_id"))
        if ann.get("iscrowd", 0) not in (0, 1):
            raise _fail(path, f"annotations[{i}].iscrowd", "0 or 1", ann.get("iscrowd"))


def _with_unique_ids(data: dict, key: str, path: Path):
    """(index, item) of `data[key]`, each an object with an integer id; the id's uniqueness is checked after the
    caller has checked the item's other fields, so the first bad field of a file is the one reported."""
    seen: set[int] = set()
    for i, item in enumerate(data[key]):
        if not isinstance(item, dict) or not _is_id(item.get("id")):
            raise _fail(path, f"{key}[{i}].id", "an integer id", item.get("id") if isinstance(item, dict) else item)
        yield i, item
        if item["id"] in seen:
            raise _fail(path, f"{key}[{i}].id", "a unique id", item["id"])
        seen.add(item["id"])


def _load_text(path: Path, keep_masks: bool):
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text ({err.reason}); expected a COCO instances file") from None
    if not keep_masks:
        text = _MASK_VALUE.sub('"segmentation":null', text)   # rebinding frees the file's text before parsing
    try:
        return _parse(text)
    except json.JSONDecodeError:
        try:  # report the position in the file as written
            json.loads(path.read_text(encoding="utf-8"))
            raise AssertionError("mask pattern broke valid JSON")  # pragma: no cover
        except json.JSONDecodeError as err:
            raise InputError(f"{path}: not valid JSON (line {err.lineno} column {err.colno}: {err.msg}); "
                             "expected a COCO instances file") from None
    except (ValueError, RecursionError) as err:   # an integer of over 4300 digits; arrays nested too deeply
        reason = "nested too deeply" if isinstance(err, RecursionError) else str(err).split(":")[0]
        raise InputError(f"{path}: not valid JSON ({reason}); expected a COCO instances file") from None


def load_instances(path: str | Path, keep_masks: bool = False) -> COCO:
    """A validated pycocotools `COCO` index of an instances file; masks are dropped unless `keep_masks`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found (expected a COCO instances file, *.json)")
    data = None
    if not keep_masks:  # the fast way: bytes, masks replaced, orjson (which also checks the UTF-8)
        raw = _MASK_BYTES.sub(b'"segmentation":null', path.read_bytes())
        with contextlib.suppress(orjson.JSONDecodeError):
            data = orjson.loads(raw)
        del raw
    if data is None:  # masks kept, or what orjson refuses: as json reads it, with json's errors
        data = _load_text(path, keep_masks)
    validate_instances(data, path)
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # createIndex prints progress lines
        coco.createIndex()
    return coco
