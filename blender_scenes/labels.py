"""The one geometry rule for every position label: a 2D box and the image size give the area.

Synthetic objects and COCO boxes go through these same functions (DESIGN.md, "One geometry rule").
"""
from __future__ import annotations

import math
from typing import Sequence

AREAS: tuple[str, ...] = (
    "top left", "top center", "top right",
    "center left", "center", "center right",
    "bottom left", "bottom center", "bottom right",
)
HORIZONTAL: tuple[str, ...] = ("left", "center", "right")
VERTICAL: tuple[str, ...] = ("top", "center", "bottom")
TASKS: tuple[str, ...] = ("area9", "horizontal", "vertical", "open")

#: the labels a task's answer is drawn from; "open" asks the area without options
LABELS: dict[str, tuple[str, ...]] = {
    "area9": AREAS, "horizontal": HORIZONTAL, "vertical": VERTICAL, "open": AREAS,
}


def box_center(bbox: Sequence[float]) -> tuple[float, float]:
    x, y, w, h = bbox
    return x + w / 2.0, y + h / 2.0


def thirds_of_box(bbox: Sequence[float], width: float, height: float) -> tuple[int, int]:
    """(row, col) in 0..2 of the box centre: `min(2, floor(3*c/size))` on each axis."""
    cx, cy = box_center(bbox)
    col = min(2, max(0, math.floor(3.0 * cx / width)))
    row = min(2, max(0, math.floor(3.0 * cy / height)))
    return row, col


def area_of_box(bbox: Sequence[float], width: float, height: float) -> str:
    row, col = thirds_of_box(bbox, width, height)
    return AREAS[3 * row + col]


def label_of_box(bbox: Sequence[float], width: float, height: float, task: str) -> str:
    """The answer of `task` for an object with this COCO-style [x, y, w, h] box."""
    row, col = thirds_of_box(bbox, width, height)
    if task in ("area9", "open"):
        return AREAS[3 * row + col]
    if task == "horizontal":
        return HORIZONTAL[col]
    if task == "vertical":
        return VERTICAL[row]
    raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")


def label_of_area(area: str, task: str) -> str:
    """Project a nine-way area name onto a task's labels (e.g. 'top left' -> 'left' for horizontal)."""
    i = AREAS.index(area)
    if task in ("area9", "open"):
        return area
    if task == "horizontal":
        return HORIZONTAL[i % 3]
    if task == "vertical":
        return VERTICAL[i // 3]
    raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")


def area_of_cell(row: int, col: int, rows: int, cols: int) -> str:
    """The area holding placement cell (row, col) of a rows x cols grid (each a multiple of 3)."""
    return AREAS[3 * (3 * row // rows) + (3 * col // cols)]


def cells_of_area(area: str, rows: int, cols: int) -> list[tuple[int, int]]:
    i = AREAS.index(area)
    ar, ac = divmod(i, 3)
    br, bc = rows // 3, cols // 3
    return [(r, c) for r in range(ar * br, (ar + 1) * br) for c in range(ac * bc, (ac + 1) * bc)]


def distance_to_third_line(bbox: Sequence[float], width: float, height: float) -> float:
    """Smallest distance of the box centre to a third line, as a fraction of the image side (0 = on it)."""
    cx, cy = box_center(bbox)
    fx, fy = cx / width, cy / height
    return min(abs(fx - 1 / 3), abs(fx - 2 / 3), abs(fy - 1 / 3), abs(fy - 2 / 3))
