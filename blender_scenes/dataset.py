"""The on-disk layout of a rendered dataset (DESIGN.md) and atomic writes.

Every file is written under a temporary name and renamed into place, so a killed run never leaves a
half-written file that looks complete."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .config import SPLITS, DesignFile
from .errors import InputError
from .files import atomic_write_text, read_json
from .plan import SceneSpec

PLAN = "plan.json"


@dataclass(frozen=True)
class DatasetLayout:
    """Paths of one dataset folder: images/, scenes/, annotations/, questions/ and manifest.json."""
    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def plan(self) -> Path:
        return self.root / PLAN

    def image(self, split: str, scene_id: str) -> Path:
        return self.root / "images" / split / f"{scene_id}.png"

    def image_rel(self, split: str, scene_id: str) -> str:
        return f"images/{split}/{scene_id}.png"

    def depth(self, split: str, scene_id: str) -> Path:
        """A depth design's stored depth pass (16-bit PNG, measure.DEPTH_UNIT metres a step, 0 off objects)."""
        return self.root / self.depth_rel(split, scene_id)

    def depth_rel(self, split: str, scene_id: str) -> str:
        return f"depth/{split}/{scene_id}.png"

    def scene(self, split: str, scene_id: str) -> Path:
        return self.root / "scenes" / split / f"{scene_id}.json"

    def annotations(self, split: str) -> Path:
        return self.root / "annotations" / f"{split}.json"

    def questions(self, split: str) -> Path:
        return self.root / "questions" / f"{split}.jsonl"

    def rendered(self, split: str) -> set[str]:
        """Ids of the split's scenes whose JSON and image are both on disk: one listing of each folder, not two
        file checks per scene."""
        def stems(folder: Path, suffix: str) -> set[str]:
            try:
                return {n[:-len(suffix)] for n in os.listdir(folder) if n.endswith(suffix) and not n.startswith(".")}
            except FileNotFoundError:
                return set()
        return stems(self.root / "scenes" / split, ".json") & stems(self.root / "images" / split, ".png")

    def splits_on_disk(self) -> list[str]:
        d = self.root / "scenes"
        return sorted(p.name for p in d.iterdir() if p.is_dir()) if d.is_dir() else []

    def remove_scene_leftovers(self, owned: dict[str, set[str]]) -> int:
        """Delete what killed writers of these scenes (split -> ids) left half-written (`.ID.png.*.tmp`,
        `.ID.json.*.tmp`); a job passes the scenes it owns, so shards never touch each other's files."""
        n = 0
        for split, ids in owned.items():
            for folder in (self.root / "images" / split, self.root / "depth" / split, self.root / "scenes" / split):
                for p in folder.glob(".*.tmp") if folder.is_dir() else ():
                    if p.name[1:].split(".", 1)[0] in ids:
                        p.unlink(missing_ok=True)
                        n += 1
        return n

    def remove_split_leftovers(self) -> None:
        """Delete half-written split files and manifests (only the merging job writes those)."""
        for p in [*self.root.glob("annotations/.*.tmp"), *self.root.glob("questions/.*.tmp"),
                  *self.root.glob(".*.tmp")]:
            p.unlink(missing_ok=True)

    def read_manifest(self) -> dict:
        """The manifest, or {} when the folder has none."""
        return read_json(self.manifest, "a dataset manifest") if self.manifest.is_file() else {}


def write_plan(layout: DatasetLayout, cfg: DesignFile, scenes: list[SceneSpec], versions: dict) -> None:
    """Store the plan with the dataset: one scene per line, so it reads and diffs well."""
    head = {"design": cfg.name, "config_hash": cfg.digest(), "seed": cfg.seed, "versions": versions}
    lines = ",\n".join(json.dumps(s.to_json(), ensure_ascii=False) for s in scenes)
    atomic_write_text(layout.plan, json.dumps(head, ensure_ascii=False)[:-1] + ', "scenes": [\n' + lines + "\n]}\n")


def read_plan(layout: DatasetLayout) -> tuple[dict, list[SceneSpec]]:
    """The stored plan: (its header, the scenes). Resume, shards, merge and audit read this, never re-plan."""
    data = read_json(layout.plan, "the plan stored when rendering started")
    try:
        scenes = [SceneSpec.from_json(d) for d in data.pop("scenes")]
    except (AttributeError, ValueError, KeyError, TypeError) as err:
        raise InputError(f"{layout.plan}: not a stored plan ({type(err).__name__}: {err})") from None
    return data, scenes


def select(scenes: list[SceneSpec], splits: list[str] | None, limit: int | None) -> dict[str, list[SceneSpec]]:
    """A job's scenes per split: the first `limit` of each (plans are shuffled inside a split)."""
    out: dict[str, list[SceneSpec]] = {}
    for split in SPLITS:
        members = [s for s in scenes if s.split == split]
        if members and (not splits or split in splits):
            out[split] = members[:limit] if limit else members
    if splits:
        missing = [s for s in splits if s not in out]
        if missing:
            raise InputError(f"--split: the design has no scenes in {', '.join(missing)}; "
                             f"it has {', '.join(sorted({s.split for s in scenes}))}")
    return out
