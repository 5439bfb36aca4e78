"""What the audit compares the disk against: the manifest's config and job, and the plan stored with the
dataset (re-planned from the config for datasets that predate stored plans). The manifest's counts and
status are never trusted; only its config and job are read. Imports nothing of the audit."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import SPLITS, DesignFile, SubsetConfig, parse_design
from ..dataset import DatasetLayout, read_plan, select
from ..errors import InputError
from ..files import read_json
from ..plan import SceneSpec, plan


@dataclass
class Source:
    layout: DatasetLayout
    manifest: dict
    cfg: DesignFile
    job: dict
    planned: dict[str, list[SceneSpec]]          # the job's scenes per split (limit applied)
    design_counts: dict[str, int]                # every planned scene of the design per split (no limit)
    scenes: list[SceneSpec]                      # the whole plan
    splits: list[str] = field(default_factory=list)   # job splits, then any other split found on disk
    replan_differs: bool = False                 # today's code would plan otherwise (informational)

    @property
    def root(self) -> Path:
        return self.layout.root

    def partial(self, split: str) -> bool:
        """The job asked for fewer scenes than the design plans in this split (--limit, or split not asked)."""
        return len(self.planned.get(split, [])) < self.design_counts.get(split, 0)

    def subset(self, name: str) -> SubsetConfig | None:
        subs = self.cfg.design.subsets or [SubsetConfig(name="all")]
        return next((s for s in subs if s.name == name), None)

    def whole_split_of(self, name: str) -> str | None:
        """The split that receives the whole of a subset (every combination), else None."""
        sub = self.subset(name)
        if sub is None:
            return None
        spec = sub.split if sub.split is not None else dict(self.cfg.splits.fractions)
        if isinstance(spec, str):
            return spec
        full = [s for s, f in spec.items() if f >= 1.0 - 1e-12]
        return full[0] if full else None


def open_dataset(path: str | Path, assets: str | None = None) -> Source:
    layout = DatasetLayout(path)
    if not layout.root.is_dir():
        raise InputError(f"{layout.root}: folder not found (expected a dataset rendered by scenes2real, "
                         f"or a question file *.jsonl)")
    manifest = read_json(layout.manifest, "a dataset rendered by scenes2real")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("config"), dict):
        raise InputError(f"{layout.manifest}: field 'config': expected the design config as an object")
    cfg = parse_design(manifest["config"], f"{layout.manifest} (config)", assets)
    job = manifest.get("job") or {}
    if not isinstance(job, dict):
        raise InputError(f"{layout.manifest}: field 'job': expected an object with 'splits' and 'limit'")
    today = plan(cfg)
    scenes = read_plan(layout)[1] if layout.plan.is_file() else today
    design_counts = {s: sum(1 for x in scenes if x.split == s) for s in SPLITS}
    job_splits = [s for s in (job.get("splits") or []) if s in SPLITS] or None
    chosen = select(scenes, job_splits, job.get("limit"))
    splits = list(chosen) + [s for s in layout.splits_on_disk() if s not in chosen]
    return Source(layout, manifest, cfg, job, chosen, design_counts, scenes, splits, replan_differs=today != scenes)
