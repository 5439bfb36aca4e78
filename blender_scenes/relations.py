"""The planned side of relation questions (issue 13): which answers a relation design balances, and which pairs of
placement cells give a planned answer by construction. Pure (no bpy, no I/O); the planner and the 3D renderer's
re-placement use the same rule. What is asked is always decided from the rendered boxes and depth pass
(labels.relation_of_boxes / labels.closer_of), never from these cells: they only make the planned answer the
rendered one."""
from __future__ import annotations

from collections.abc import Sequence

from .labels import LABELS

#: depth's planned answer names the role of the closer object; the asked answer is that object's name
DEPTH_ROLES = ("target", "anchor")


def relation_levels(tasks: Sequence[str]) -> list[tuple[str, str]]:
    """(task, planned answer) for every answer of every relation task asked: the level balanced per split."""
    return [(t, a) for t in tasks for a in (DEPTH_ROLES if t == "depth" else LABELS[t])]


def level_name(task: str, answer: str) -> str:
    return f"{task}:{answer}"


def cell_gap(task: str, rows: int, cols: int) -> int:
    """Least distance in cells between the two objects on the asked axis.

    One empty cell between them on that axis keeps objects up to one cell wide apart (flat sizes are shares of
    a cell; 3D sizes are measured, and the renderer re-places a pair that touches). Depth compares rows (nearer
    the bottom of the image is nearer the camera on the ground plane); more than half the rows apart keeps the
    median depths well beyond the default 10% margin under the shipped cameras."""
    if task == "depth":
        return rows // 2 + 1
    return 2


def keeps_relation(task: str, answer: str, target: tuple[int, int], anchor: tuple[int, int],
                   rows: int, cols: int) -> bool:
    """Whether the target in cell `target` and the anchor in cell `anchor` are placed for this answer."""
    gap = cell_gap(task, rows, cols)
    (tr, tc), (ar, ac) = target, anchor
    if task == "left_right":
        return ac - tc >= gap if answer == "left" else tc - ac >= gap
    if task == "above_below":
        return ar - tr >= gap if answer == "above" else tr - ar >= gap
    if task == "depth":   # rows further down the image are closer to a camera above the ground, looking down
        return tr - ar >= gap if answer == "target" else ar - tr >= gap
    raise ValueError(f"unknown relation task {task!r}")


def pair_cells(task: str, answer: str, rows: int, cols: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Every (target cell, anchor cell) placed for this answer, in a fixed order."""
    cells = [(r, c) for r in range(rows) for c in range(cols)]
    return [(t, a) for t in cells for a in cells if keeps_relation(task, answer, t, a, rows, cols)]
