"""Read one scene from disk: its JSON record, its image (decoded, hashed) and every object's mask, measured
again from the RLE. Runs in worker processes, so it takes and returns plain data only."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np

from ..labels import area_of_box
from ..measure import decode_mask

OBJECT_KEYS = ("id", "role", "shape", "display", "color", "size", "material", "planned_cell", "cell", "area",
               "bbox", "visible_pixels", "visible_share")


def pixel_hash(img: np.ndarray) -> str:
    """Hash of the decoded pixels (and their shape): equal for identical images whatever the PNG encoder did."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((img.shape, str(img.dtype))).encode())
    h.update(np.ascontiguousarray(img).tobytes())
    return h.hexdigest()


def read_image(path: Path) -> dict:
    """exists / decodes / (height, width) / pixel hash of one image file; the pixels for the caller."""
    if not path.is_file():
        return {"exists": False, "decodes": False, "shape": None, "hash": None}, None
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        return {"exists": True, "decodes": False, "shape": None, "hash": None}, None
    return {"exists": True, "decodes": True, "shape": [int(img.shape[0]), int(img.shape[1])],
            "hash": pixel_hash(img)}, img


def mask_box(mask: np.ndarray) -> list[float] | None:
    """COCO [x, y, w, h] of the true pixels of a mask, from numpy alone (independent of pycocotools.toBbox)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return None
    return [float(cols[0]), float(rows[0]), float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1)]


def measure_object(obj: dict, img: np.ndarray | None, background: tuple[int, int, int] | None) -> dict:
    """What the object's mask says: its box, pixel count and area label, and (flat scenes) the share of its
    pixels that show the background colour in the image (should be ~0: the mask covers the drawn shape)."""
    out = {k: obj.get(k) for k in OBJECT_KEYS}
    seg = obj.get("segmentation")
    out["seg_digest"] = hashlib.blake2b(json.dumps(seg, sort_keys=True).encode(), digest_size=8).hexdigest()
    try:
        mask = decode_mask(seg)
    except Exception as err:   # noqa: BLE001  any malformed RLE is a finding, not a crash
        out.update(mask_error=f"{type(err).__name__}: {err}", mask_box=None, mask_pixels=None, mask_area=None)
        return out
    box = mask_box(mask)
    out["mask_error"] = None
    out["mask_shape"] = [int(mask.shape[0]), int(mask.shape[1])]
    out["mask_box"] = box
    out["mask_pixels"] = int(mask.sum())
    out["mask_area"] = area_of_box(box, mask.shape[1], mask.shape[0]) if box else None
    out["background_share"] = None
    if background is not None and img is not None and box and img.shape[:2] == mask.shape:
        bgr = img[..., :3] if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2)
        bg = np.array(background[::-1], dtype=bgr.dtype)   # config RGB -> OpenCV BGR
        out["background_share"] = float((bgr[mask] == bg).all(axis=1).mean())
    return out


def scan_scene(job: tuple[str, str, str, str, list | None]) -> dict:
    """(root, split, scene id, expected image path, flat background RGB or None) -> findings of one scene."""
    root, split, sid, image_rel, background = job
    root = Path(root)
    scene_path = root / "scenes" / split / f"{sid}.json"
    out = {"split": split, "id": sid, "scene_file": f"scenes/{split}/{sid}.json", "scene_exists": scene_path.is_file(),
           "error": None, "record": None}
    record = None
    if out["scene_exists"]:
        try:
            record = json.loads(scene_path.read_text(encoding="utf-8"))
            if not isinstance(record, dict) or not isinstance(record.get("objects"), list) or not record["objects"]:
                raise ValueError("expected an object with a non-empty 'objects' list (the target first)")
        except (ValueError, UnicodeDecodeError) as err:
            out["error"] = f"not valid scene JSON: {str(err).splitlines()[0][:160]}"
            record = None
    image_rel = (record or {}).get("image") or image_rel
    out["image_file"] = image_rel
    info, img = read_image(root / image_rel)
    out["image"] = info
    if record is not None:
        try:
            objects = [measure_object(o, img, background) for o in record["objects"]]
        except (KeyError, TypeError, AttributeError) as err:
            out["error"] = f"malformed object in scene JSON: {type(err).__name__}: {err}"
            return out
        out["record"] = {
            **{k: record.get(k) for k in ("id", "index", "split", "subset", "variation", "image", "width",
                                          "height")},
            "objects": objects,
            "questions": [{k: q.get(k) for k in ("id", "task", "answer", "options", "image")} |
                          {"bbox": (q.get("target") or {}).get("bbox")} for q in record.get("questions") or []],
        }
    return out
