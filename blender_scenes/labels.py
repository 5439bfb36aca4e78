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

#: the labels a task's answer is drawn from; "open" asks the area without options. The 2D relation tasks
#: (below) are here too; `depth` is not: its two options are the objects' own names.
LABELS: dict[str, tuple[str, ...]] = {
    "area9": AREAS, "horizontal": HORIZONTAL, "vertical": VERTICAL, "open": AREAS,
    "left_right": ("left", "right"), "above_below": ("above", "below"),
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


# --- relations between two objects (issue 13): the same boxes, compared instead of placed ---------------------

RELATION_TASKS: tuple[str, ...] = ("left_right", "above_below", "depth")
#: questions from other sources (public benchmarks): `mc` asks one of the record's own options, whatever they are
#: ("yes"/"no", captions, counts); its metrics count the options' positions, A, B, ... (MC_POSITIONS)
BENCHMARK_TASKS: tuple[str, ...] = ("mc",)
ALL_TASKS: tuple[str, ...] = TASKS + RELATION_TASKS + BENCHMARK_TASKS
MC_POSITIONS: tuple[str, ...] = tuple("ABCDEFGHIJ")
#: the task families exports group records by (a Hub dataset config, an lmms-eval task each)
TASK_FAMILIES: dict[str, tuple[str, ...]] = {"areas": TASKS, "relations": RELATION_TASKS,
                                             "choices": BENCHMARK_TASKS}
#: default for `depth`: the two visible surfaces' median depths must differ by this share of the farther one
DEPTH_MARGIN = 0.1


def relation_of_boxes(target: Sequence[float], anchor: Sequence[float], task: str) -> str | None:
    """Where the target box lies relative to the anchor box, or None when the task is not asked for this pair.

    Only separated intervals answer: `left_right` needs the x-intervals not to overlap (`a.x + a.w <= b.x` is
    `left`, `b.x + b.w <= a.x` is `right`), `above_below` the y-intervals (`above` / `below`). Touching counts as
    separated; boxes of zero width or height are intervals like any other.
    """
    if task == "left_right":
        axis = 0
    elif task == "above_below":
        axis = 1
    else:
        raise ValueError(f"unknown 2D relation task {task!r}; expected left_right or above_below")
    low, high = LABELS[task]
    a0, a1 = target[axis], target[axis] + target[axis + 2]
    b0, b1 = anchor[axis], anchor[axis] + anchor[axis + 2]
    if a1 <= b0 and b1 <= a0:  # both zero-length at the same coordinate: no side
        return None
    if a1 <= b0:
        return low
    if b1 <= a0:
        return high
    return None


def closer_of(depth_a: float, depth_b: float, margin: float = DEPTH_MARGIN) -> int | None:
    """Which of two objects is closer to the camera (0 = the first, 1 = the second) from the median depths of
    their visible pixels, or None when the medians differ by less than `margin` times the farther one."""
    if depth_a == depth_b or abs(depth_a - depth_b) < margin * max(depth_a, depth_b):
        return None
    return 0 if depth_a < depth_b else 1
