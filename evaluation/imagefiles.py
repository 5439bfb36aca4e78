"""Image files: which of many exist, for the question importers (COCO, the benchmarks) that refuse records
pointing nowhere: one `os.scandir` per folder instead of a stat per file, so checking the 118k images of
train2017 costs one directory listing (paths are handled as strings: pathlib per file costs more than the
listing); and an image's format from its first bytes. No bpy, no torch."""
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


_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpg"), (b"GIF87a", "gif"), (b"GIF89a", "gif"),
               (b"BM", "bmp"))
#: the media type of each kind `image_kind` tells
MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "gif": "image/gif", "bmp": "image/bmp", "webp": "image/webp"}


def image_kind(data: bytes) -> str | None:
    """The format of an image file's bytes, from its first bytes (png, jpg, gif, bmp, webp), or None."""
    for signature, kind in _SIGNATURES:
        if data.startswith(signature):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def count_line(missing: int, total: int) -> str:
    """'4,952 of 5,000': the numbers of a missing-images message, grouped as people read them."""
    return f"{missing:,} of {total:,}"
