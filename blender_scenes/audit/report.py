"""The report files: report.json (everything), report.md (tables, pictures as PNG files beside it) and a
self-contained report.html (pictures inlined as base64 data URIs). Both texts come from one list of blocks, the
page of a dataset or of a question file. Of the audit it imports only the pages and blocks."""
from __future__ import annotations

import json
import math
from pathlib import Path

from ..files import atomic_write_bytes, atomic_write_text
from .blocks import Block, to_html, to_markdown
from .dataset_page import dataset_blocks
from .question_page import question_file_blocks


def jsonable(x):
    """inf -> "inf", NaN -> None, sets -> sorted lists, tuples -> lists (strict JSON)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else ("inf" if x > 0 else None)
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, set):
        return sorted(jsonable(v) for v in x)
    return x


def blocks_of(report: dict, figs: dict[str, bytes]) -> list[Block]:
    """The text of a report, as blocks, from its JSON form and its pictures."""
    if report["kind"] == "questions":
        return question_file_blocks(report, figs)
    return dataset_blocks(report, figs)


def write_report(report: dict, figs: dict[str, bytes], out: str | Path) -> None:
    out = Path(out)
    blocks = blocks_of(report, figs)
    for name, png in figs.items():
        atomic_write_bytes(out / "figures" / f"{name}.png", png)
    atomic_write_text(out / "report.json", json.dumps(jsonable(report), indent=1, allow_nan=False) + "\n")
    atomic_write_text(out / "report.md", to_markdown(blocks))
    atomic_write_text(out / "report.html", to_html(blocks, f"audit: {report['dataset']}"))
