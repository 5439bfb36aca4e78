"""The on-disk layout of a rendered dataset (DESIGN.md) and atomic writes.

Every file is written under a temporary name and renamed into place, so a killed run never leaves a
half-written file that looks complete."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .config import SPLITS, DesignFile
from .errors import InputError
from .files import atomic_write_text, read_json
from .plan import SceneSpec, path_problem

PLAN = "plan.json"


@dataclass(frozen=True)
class DatasetLayout:
    """Paths of one dataset folder: images/, scenes/, annotations/, questions/ and manifest.json."""
    root: Path
    # (kind, split) -> its folder, checked once to resolve inside the root: resolve() costs as much as reading a
    # scene record, so it is not paid per scene
    _folders: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    def _folder(self, kind: str, split: str, scene_id: str) -> Path:
        """`root/kind/split`, for a scene whose id and split (from file content) can only name a file inside it:
        each is checked, and the folder must resolve (symlinks followed) inside the root."""
        problem = path_problem(scene_id, split)
        if problem:
            raise InputError(f"{self.root}: scene {split!r}/{scene_id!r}: field '{problem[0]}': {problem[1]} "
                             f"(its files must stay inside the dataset)")
        folder = self._folders.get((kind, split))
        if folder is None:
            folder = self.root / kind / split
            real, root = folder.resolve(), self.root.resolve()
            if not real.is_relative_to(root):
                raise InputError(f"{folder}: resolves to {real}, outside the dataset {root}; expected a folder "
                                 f"inside it (not a symlink out of it)")
            self._folders[(kind, split)] = folder
        return folder

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def plan(self) -> Path:
        return self.root / PLAN

    def image(self, split: str, scene_id: str) -> Path:
        return self._folder("images", split, scene_id) / f"{scene_id}.png"

    def image_rel(self, split: str, scene_id: str) -> str:
        self._folder("images", split, scene_id)
        return f"images/{split}/{scene_id}.png"

    def depth(self, split: str, scene_id: str) -> Path:
        """A depth design's stored depth pass (16-bit PNG, measure.DEPTH_UNIT metres a step, 0 off objects)."""
        return self._folder("depth", split, scene_id) / f"{scene_id}.png"

    def depth_rel(self, split: str, scene_id: str) -> str:
        self._folder("depth", split, scene_id)
        return f"depth/{split}/{scene_id}.png"

    def scene(self, split: str, scene_id: str) -> Path:
        return self._folder("scenes", split, scene_id) / f"{scene_id}.json"

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
        scenes = [SceneSpec.from_json(d, f"scenes[{i}].") for i, d in enumerate(data.pop("scenes"))]
    except InputError as err:   # an id or split that cannot name a file inside the dataset
        raise InputError(f"{layout.plan}: {err}") from None
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
