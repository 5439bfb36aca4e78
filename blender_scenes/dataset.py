"""The on-disk layout of a rendered dataset (DESIGN.md) and atomic writes.

Every file is written under a temporary name and renamed into place, so a killed run never leaves a
half-written file that looks complete."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = None) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, sort_keys=False) + "\n")


@dataclass(frozen=True)
class DatasetLayout:
    """Paths of one dataset folder: images/, scenes/, annotations/, questions/ and manifest.json."""
    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    def image(self, split: str, scene_id: str) -> Path:
        return self.root / "images" / split / f"{scene_id}.png"

    def image_rel(self, split: str, scene_id: str) -> str:
        return f"images/{split}/{scene_id}.png"

    def scene(self, split: str, scene_id: str) -> Path:
        return self.root / "scenes" / split / f"{scene_id}.json"

    def annotations(self, split: str) -> Path:
        return self.root / "annotations" / f"{split}.json"

    def questions(self, split: str) -> Path:
        return self.root / "questions" / f"{split}.jsonl"

    def splits_on_disk(self) -> list[str]:
        d = self.root / "scenes"
        return sorted(p.name for p in d.iterdir() if p.is_dir()) if d.is_dir() else []

    def remove_temporaries(self) -> int:
        """Delete half-written files (`.NAME.PID.tmp`) that a killed run left; returns how many."""
        n = 0
        for sub in ("images", "scenes", "annotations", "questions"):
            for p in (self.root / sub).rglob(".*.tmp") if (self.root / sub).is_dir() else ():
                p.unlink(missing_ok=True)
                n += 1
        for p in self.root.glob(".*.tmp") if self.root.is_dir() else ():
            p.unlink(missing_ok=True)
            n += 1
        return n

    def read_manifest(self) -> dict:
        return json.loads(self.manifest.read_text()) if self.manifest.is_file() else {}
