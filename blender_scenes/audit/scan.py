"""Read one scene from disk: its JSON record, its image (decoded, hashed) and every object's mask, measured
again from the RLE. Runs in worker processes, so it takes and returns plain dataclasses (picklable) and imports
nothing of the audit: a worker loads only this module."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..labels import area_of_box
from ..measure import decode_mask, median_depth

# what a scene record says of an object, copied as recorded (a damaged file may hold anything there)
OBJECT_KEYS = ("id", "role", "shape", "display", "color", "size", "material", "planned_cell", "cell", "area",
               "bbox", "visible_pixels", "visible_share", "depth")
RECORD_KEYS = ("id", "index", "split", "subset", "variation", "image", "width", "height", "relation", "depth_file")
QUESTION_KEYS = ("id", "task", "answer", "options", "image")
ATTRS = ("shape", "color", "size", "material")   # the factors an object carries


@dataclass(frozen=True)
class ScanJob:
    """What a worker needs to scan one scene: the dataset root, the scene, where its image should be and,
    for flat scenes, the background colour (RGB) that must not show under a mask."""
    root: str
    split: str
    scene_id: str
    image_file: str
    background: list | None


@dataclass(frozen=True)
class ImageCheck:
    """One image file: found, decoded, its (height, width) and the hash of its decoded pixels."""
    exists: bool
    decodes: bool = False
    shape: list[int] | None = None
    hash: str | None = None


@dataclass
class SceneObject:
    """An object as its scene record gives it (first the recorded fields), then what its mask says. The
    recorded fields are typed as written by the renderer; a damaged file may hold anything there, which is
    what the checks report."""
    id: Any = None
    role: str | None = None
    shape: str | None = None
    display: str | None = None
    color: str | None = None
    size: str | None = None
    material: str | None = None
    planned_cell: list[int] | None = None
    cell: list[int] | None = None
    area: str | None = None
    bbox: list[float] | None = None
    visible_pixels: int | None = None
    visible_share: float | None = None
    depth: float | None = None                 # depth designs: the recorded median depth of its visible pixels
    seg_digest: str | None = None              # digest of the recorded RLE, compared with the COCO file's
    mask_error: str | None = None              # why the RLE does not decode
    mask_shape: list[int] | None = None        # (height, width)
    mask_box: list[float] | None = None        # COCO box of the mask's pixels; None for an empty mask
    mask_pixels: int | None = None
    mask_area: str | None = None               # the area label of the mask's box, by the one rule
    background_share: float | None = None      # flat scenes: share of the mask showing the background colour
    mask_depth: float | None = None            # depth designs: median of the stored depth pass over the mask


@dataclass(frozen=True)
class SceneQuestion:
    """A question as the scene record gives it."""
    id: Any
    task: Any
    answer: Any
    options: Any
    image: Any


@dataclass
class SceneRecord:
    """The fields of a scene record the audit reads, its objects measured from their masks (the target first)."""
    id: Any
    index: Any
    split: Any
    subset: Any
    variation: Any
    image: Any
    width: Any
    height: Any
    relation: Any                  # relation designs: the planned {"task", "answer"}; None otherwise
    depth_file: Any                # depth designs: the stored depth pass, relative to the dataset root
    objects: list[SceneObject]
    questions: list[SceneQuestion]
    depth_error: str | None = None   # why the depth pass could not be read


@dataclass
class SceneScan:
    """One scene as found on disk: its scene JSON (read, or why not) and its image."""
    split: str
    id: str
    scene_file: str                    # relative to the dataset root
    scene_exists: bool
    image_file: str                    # the record's image path, else the expected one
    image: ImageCheck
    record: SceneRecord | None = None  # None when the scene JSON is missing or unreadable
    error: str | None = None           # why the scene JSON could not be read


def pixel_hash(img: np.ndarray) -> str:
    """Hash of the decoded pixels (and their shape): equal for identical images whatever the PNG encoder did."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((img.shape, str(img.dtype))).encode())
    h.update(np.ascontiguousarray(img).tobytes())
    return h.hexdigest()


def segmentation_digest(segmentation) -> str:
    """A short digest of an RLE as JSON: the scene record's and the COCO file's must be equal."""
    return hashlib.blake2b(json.dumps(segmentation, sort_keys=True).encode(), digest_size=8).hexdigest()


def read_image(path: Path) -> tuple[ImageCheck, np.ndarray | None]:
    """What can be said of one image file; the pixels for the caller."""
    if not path.is_file():
        return ImageCheck(exists=False), None
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        return ImageCheck(exists=True), None
    return ImageCheck(True, True, [int(img.shape[0]), int(img.shape[1])], pixel_hash(img)), img


def mask_box(mask: np.ndarray) -> list[float] | None:
    """COCO [x, y, w, h] of the true pixels of a mask, from numpy alone (independent of pycocotools.toBbox)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return None
    return [float(cols[0]), float(rows[0]), float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1)]


def read_depth_map(path: Path) -> tuple[np.ndarray | None, str | None]:
    """A stored depth pass (16-bit PNG, measure.DEPTH_UNIT metres a step), or why it cannot be read."""
    if not path.is_file():
        return None, "missing depth pass"
    depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if depth is None or depth.ndim != 2 or depth.dtype != np.uint16:
        return None, "depth pass does not decode as a 16-bit single-channel PNG"
    return depth, None


def measure_object(obj: dict, img: np.ndarray | None, background: list | None,
                   depth: np.ndarray | None = None) -> SceneObject:
    """What the object's mask says: its box, pixel count and area label, and (flat scenes) the share of its
    pixels that show the background colour in the image (should be ~0: the mask covers the drawn shape)."""
    out = SceneObject(**{k: obj.get(k) for k in OBJECT_KEYS})
    seg = obj.get("segmentation")
    out.seg_digest = segmentation_digest(seg)
    try:
        mask = decode_mask(seg)
    except Exception as err:   # noqa: BLE001  any malformed RLE is a finding, not a crash
        out.mask_error = f"{type(err).__name__}: {err}"
        return out
    box = mask_box(mask)
    out.mask_shape = [int(mask.shape[0]), int(mask.shape[1])]
    out.mask_box = box
    out.mask_pixels = int(mask.sum())
    out.mask_area = area_of_box(box, mask.shape[1], mask.shape[0]) if box else None
    if depth is not None and depth.shape == mask.shape:
        out.mask_depth = median_depth(depth, mask)
    if background is not None and img is not None and box and img.shape[:2] == mask.shape:
        bgr = img[..., :3] if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2)
        bg = np.array(background[::-1], dtype=bgr.dtype)   # config RGB -> OpenCV BGR
        out.background_share = float((bgr[mask] == bg).all(axis=1).mean())
    return out


def read_record(path: Path) -> dict:
    """A scene JSON as written: an object with a non-empty 'objects' list; ValueError otherwise."""
    record = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(record, dict) or not isinstance(record.get("objects"), list) or not record["objects"]:
        raise ValueError("expected an object with a non-empty 'objects' list (the target first)")
    return record


def scan_scene(job: ScanJob) -> SceneScan:
    """One scene's files, read and measured; what cannot be read is said in `error` (a finding, not a crash)."""
    root = Path(job.root)
    scene_file = f"scenes/{job.split}/{job.scene_id}.json"
    scene_path = root / scene_file
    exists = scene_path.is_file()
    record, error = None, None
    if exists:
        # not files.read_json: a bad scene JSON is a finding whose wording ("not valid scene JSON: <the
        # parser's first line>") users grep for, not an InputError that stops the audit
        try:
            record = read_record(scene_path)
        except (ValueError, UnicodeDecodeError) as err:
            error = f"not valid scene JSON: {str(err).splitlines()[0][:160]}"
    image_file = (record or {}).get("image") or job.image_file
    image, img = read_image(root / image_file)
    scan = SceneScan(job.split, job.scene_id, scene_file, exists, image_file, image, error=error)
    if record is not None:
        depth, depth_error = None, None
        if isinstance(record.get("depth_file"), str):
            depth, depth_error = read_depth_map(root / record["depth_file"])
        try:
            objects = [measure_object(o, img, job.background, depth) for o in record["objects"]]
        except (KeyError, TypeError, AttributeError) as err:
            scan.error = f"malformed object in scene JSON: {type(err).__name__}: {err}"
            return scan
        questions = [SceneQuestion(**{k: q.get(k) for k in QUESTION_KEYS}) for q in record.get("questions") or []]
        scan.record = SceneRecord(**{k: record.get(k) for k in RECORD_KEYS}, objects=objects, questions=questions,
                                  depth_error=depth_error)
    return scan


def records_of(scans: dict[str, list[SceneScan]], split: str | None = None) -> list[tuple[str, SceneScan]]:
    """(split, scan) of every scene whose record was read, in scan order; of one split if given."""
    return [(s, scan) for s, found in scans.items() if split in (None, s) for scan in found if scan.record]
