"""Which of many image files exist, for the question importers (COCO, the benchmarks) that refuse records
pointing nowhere: one `os.scandir` per folder instead of a stat per file, so checking the 118k images of
train2017 costs one directory listing. Paths are handled as strings (pathlib per file costs more than the
listing). No bpy, no torch."""
from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

StrPath = str | Path


def missing_files(paths: Iterable[StrPath]) -> list[StrPath]:
    """The paths (in the order given, each once) that are not files: each distinct folder is listed once."""
    unique = list(dict.fromkeys(paths))
    by_folder: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for i, path in enumerate(unique):
        head, sep, name = os.fspath(path).rpartition(os.sep)   # os.path.split, at a fraction of its cost
        by_folder[head or sep or "."].append((i, name))   # "/x": the root; "x": the working directory
    missing: list[int] = []
    for folder, members in by_folder.items():
        present = _files_in(folder)
        missing += [i for i, name in members if name not in present]
    return [unique[i] for i in sorted(missing)]


def _files_in(folder: str) -> set[str]:
    """Names of the files (symlinks to files included) in `folder`; empty when it is not a readable folder."""
    try:
        with os.scandir(folder) as entries:
            return {e.name for e in entries if e.is_file()}
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return set()


def count_line(missing: int, total: int) -> str:
    """'4,952 of 5,000': the numbers of a missing-images message, grouped as people read them."""
    return f"{missing:,} of {total:,}"
