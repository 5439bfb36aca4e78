"""What every report page is made of besides its own sections: number formats, the findings by kind, answers
per task and the pictures with their captions. Read from the report's JSON form; of the audit it imports
only balance and blocks."""
from __future__ import annotations

from .balance import fmt_ratio
from .blocks import Block, Bullets, Heading, Paragraph, Picture, Table

FINDINGS_SHOWN = 60   # per kind, in md/html; report.json holds all

CAPTIONS = {
    "areas": "Targets per area, one 3x3 map per split (area of each target's mask box).",
    "cells": "Targets per placement cell (the planned grid cell).",
    "factors": "Targets per factor level, per split.",
    "options": "Position of the correct option in the shuffled options, per task.",
    "visibility": "Visible share of every object (1.0 = unoccluded).",
    "samples": "Sample images with every object's mask box (green: target, orange: others) and the target's label.",
    "compare": "Area of targets: synthetic splits beside the compared question file.",
}


def pct(x) -> str:
    """A share as a percentage, "-" for none."""
    return "-" if x is None else f"{100 * x:.1f}%"


def num(x, digits=3) -> str:
    """A figure for a table: floats to `digits` places without trailing zeros, tiny ones in g format."""
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) < 1e-3 and x else f"{x:.{digits}f}".rstrip("0").rstrip(".")
    return str(x)


def tasks_blocks(tasks: dict, prefix: str = "") -> list[Block]:
    """Answer counts per task, and the correct option's position where there are options."""
    out: list[Block] = [Heading(3, f"{prefix}answers per task")]
    for task, v in tasks.items():
        out.append(Table([f"{task} answer", *v["answers"].keys(), "ratio"],
                         [["count", *v["answers"].values(), fmt_ratio(v["ratio"])]]))
        if v.get("option_index"):
            f = v["option_index_figures"]
            out.append(Table([f"{task}: correct option index", *v["option_index"].keys(), "ratio", "chi-square p"],
                             [["count", *v["option_index"].values(), fmt_ratio(f["ratio"]), num(f["p"])]]))
    return out


def findings_blocks(report: dict) -> list[Block]:
    """The findings by kind, the first FINDINGS_SHOWN of each."""
    fs = report["findings"]
    if not fs:
        return [Heading(2, "Findings"), Paragraph("None: every check passed.")]
    out: list[Block] = [Heading(2, "Findings")]
    by: dict[str, list] = {}
    for f in fs:
        by.setdefault(f["kind"], []).append(f)
    for kind, items in by.items():
        strict = sum(f["strict"] for f in items)
        lines = [("" if f["strict"] else "(informational) ") + (f"{f['file']}: " if f["file"] else "")
                 + f["message"] for f in items[:FINDINGS_SHOWN]]
        if len(items) > FINDINGS_SHOWN:
            lines.append(f"... and {len(items) - FINDINGS_SHOWN} more (report.json lists all)")
        out += [Heading(3, f"{kind}: {len(items)} ({strict} fail --strict)"), Bullets(lines)]
    return out


def pictures_blocks(figs: dict[str, bytes]) -> list[Block]:
    return [Picture(name, CAPTIONS.get(name, name), png) for name, png in figs.items()]
