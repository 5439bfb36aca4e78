"""Measure what was rendered: an object-index map -> each object's mask (COCO RLE), visible box,
visible pixels and area label. No bpy: boxes and masks come from pixels, never from intent."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils

from .labels import area_of_box


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
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_mask(rle: dict) -> np.ndarray:
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).astype(bool)


def measure(index_map: np.ndarray, object_id: int) -> Measured:
    """The object's visible mask is every pixel whose index equals its id."""
    m = index_map == object_id
    rle = encode_mask(m)
    pixels = int(m.sum())
    if pixels == 0:
        return Measured(None, 0, rle, None)
    raw = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    bbox = tuple(float(v) for v in mask_utils.toBbox(raw))
    h, w = index_map.shape
    return Measured(bbox, pixels, rle, area_of_box(bbox, w, h))

