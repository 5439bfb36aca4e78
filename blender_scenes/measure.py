"""Measure what was rendered: an object-index map -> each object's mask (COCO RLE), visible box,
visible pixels and area label. No bpy: boxes and masks come from pixels, never from intent."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils

from .labels import DEPTH_MARGIN, area_of_box, closer_of, relation_of_boxes


@dataclass(frozen=True)
class Measured:
    bbox: tuple[float, float, float, float] | None   # COCO [x, y, w, h] of the visible pixels
    pixels: int                                      # visible pixels
    rle: dict                                        # COCO compressed RLE, counts as str
    area: str | None                                 # area label of bbox by the one rule

    def to_json(self) -> dict:
        return {"bbox": list(self.bbox) if self.bbox else None, "visible_pixels": self.pixels,
                "area": self.area, "segmentation": self.rle}


def encode_mask(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))   # no copy of object_mask's array
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def object_mask(index_map: np.ndarray, object_id: int) -> np.ndarray:
    """The pixels whose index equals the id, as the column-major uint8 array pycocotools encodes: compared
    on the transposed map, no copy is needed (a transposing copy of a whole frame costs more than the RLE)."""
    return np.equal(index_map.T, object_id, order="C").view(np.uint8).T


def decode_mask(rle: dict) -> np.ndarray:
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).astype(bool)


def measure(index_map: np.ndarray, object_id: int) -> Measured:
    """The object's visible mask is every pixel whose index equals its id."""
    m = object_mask(index_map, object_id)
    rle = encode_mask(m)
    pixels = int(np.count_nonzero(m))
    if pixels == 0:
        return Measured(None, 0, rle, None)
    raw = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    bbox = tuple(float(v) for v in mask_utils.toBbox(raw))
    h, w = index_map.shape
    return Measured(bbox, pixels, rle, area_of_box(bbox, w, h))



# --- relations (issue 13): what the rendered boxes and depth pass say of a pair -------------------------------

DEPTH_STEPS = 1000   # steps per metre of a stored depth PNG (16-bit: millimetres, up to 65.5 m)
DEPTH_UNIT = 1 / DEPTH_STEPS


def depth_png(depth: np.ndarray, index_map: np.ndarray) -> np.ndarray:
    """A depth pass (float metres along the view axis) as stored: uint16 steps of DEPTH_UNIT on object pixels, 0
    elsewhere. Every median depth is taken from these stored values, so the audit recomputes it exactly."""
    objects = index_map > 0
    steps = np.rint(depth[objects] * DEPTH_STEPS)
    if steps.size and steps.max() > np.iinfo(np.uint16).max:
        raise RuntimeError(f"depth pass: an object is {steps.max() * DEPTH_UNIT:.1f} m from the camera; the "
                           f"16-bit depth PNG stores up to {np.iinfo(np.uint16).max * DEPTH_UNIT:.1f} m "
                           f"(bring camera.distance closer)")
    out = np.zeros(depth.shape, np.uint16)
    out[objects] = steps.astype(np.uint16)
    return out


def median_depth(depth_steps: np.ndarray, mask: np.ndarray) -> float | None:
    """Median depth in metres of an object's visible pixels (its mask) in a stored depth map; None if unseen."""
    values = depth_steps[mask]
    return float(np.median(values)) / DEPTH_STEPS if values.size else None   # /: 13.229, not 13.229000000000001


def measured_relation(task: str, target_box, anchor_box, target_depth: float | None = None,
                      anchor_depth: float | None = None, margin: float = DEPTH_MARGIN) -> str | None:
    """The pair's relation in the planner's terms (relations.relation_levels): a 2D task's label from the two
    visible boxes, or for depth the role ("target" / "anchor") of the closer object; None when not asked."""
    if task == "depth":
        if target_depth is None or anchor_depth is None:
            return None
        closer = closer_of(target_depth, anchor_depth, margin)
        return None if closer is None else ("target", "anchor")[closer]
    if target_box is None or anchor_box is None:
        return None
    return relation_of_boxes(target_box, anchor_box, task)
