"""A render job: plan -> select (splits, limit, shard) -> skip what is done (resume) -> render in
worker processes (each imports bpy once and is replaced every few hundred scenes, since bpy leaks) ->
merge split files -> manifest. Imports no bpy itself."""
from __future__ import annotations

import math
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from scenes2real.errors import InputError

from .annotate import merge
from .config import SPLITS, DesignFile
from .dataset import DatasetLayout, atomic_write_json
from .plan import SceneSpec, plan


@dataclass
class JobStats:
    scenes: int = 0
    skipped: int = 0
    seconds: float = 0.0
    worker_seconds: float = 0.0
    engine_seconds: float = 0.0
    peak_rss_mb: list[float] = field(default_factory=list)
    status: dict = field(default_factory=dict)


def parse_shard(text: str | None) -> tuple[int, int]:
    if not text:
        return 0, 1
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise InputError(f"--shard: expected K/N with integers 0 <= K < N, got {text!r}") from None
    if not 0 <= k < n:
        raise InputError(f"--shard: expected K/N with 0 <= K < N, got {text!r}")
    return k, n


def select(scenes: list[SceneSpec], splits: list[str] | None, limit: int | None) -> dict[str, list[SceneSpec]]:
    """The job's scenes per split: the first `limit` of each (plans are shuffled inside a split)."""
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


def versions() -> dict:
    out = {}
    for pkg in ("scenes2real", "bpy", "numpy", "pycocotools", "opencv-python-headless"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _check_existing(layout: DatasetLayout, cfg: DesignFile, resume: bool) -> None:
    manifest = layout.read_manifest()
    if not manifest:
        if any(layout.root.glob("scenes/*/*.json")):
            raise InputError(f"{layout.root}: holds scenes but no manifest.json; choose another --out")
        return
    if manifest.get("config_hash") != cfg.digest():
        raise InputError(f"{layout.manifest}: field 'config_hash': the dataset was rendered from another "
                         f"config ({manifest.get('config_hash')} != {cfg.digest()}); choose another --out")
    if not resume and any(layout.root.glob("scenes/*/*.json")):
        raise InputError(f"{layout.root}: already holds scenes of this design; use --resume to finish it")


def write_manifest(layout: DatasetLayout, cfg: DesignFile, job: dict, status: dict) -> None:
    atomic_write_json(layout.manifest, {
        "name": cfg.name, "config": cfg.model_dump(mode="json"), "config_hash": cfg.digest(),
        "seed": cfg.seed, "versions": versions(), "job": job,
        "counts": {s: {"planned": v["planned"], "rendered": v["rendered"]} for s, v in status.items()},
        "status": {s: v["status"] for s, v in status.items()},
    }, indent=2)


def run(cfg: DesignFile, out: str | Path, splits: list[str] | None = None, limit: int | None = None,
        workers: int = 1, shard: str | None = None, resume: bool = False, progress: bool = True,
        chunk: int | None = None) -> JobStats:
    from .assets import check_design

    check_design(cfg, f"design {cfg.name!r}")   # configs built in code skip parse_design's check
    layout = DatasetLayout(out)
    k, n = parse_shard(shard)
    _check_existing(layout, cfg, resume)
    layout.remove_temporaries()   # what a killed run was writing; the scene is rendered again
    chosen = select(plan(cfg), splits, limit)
    job = {"splits": list(chosen), "limit": limit}
    expected = {split: [s.id for s in members] for split, members in chosen.items()}
    mine = [s for members in chosen.values() for s in members if s.index % n == k]
    todo = [s for s in mine if not (layout.scene(s.split, s.id).is_file() and layout.image(s.split, s.id).is_file())]
    stats = JobStats(skipped=len(mine) - len(todo))
    if n == 1 or not layout.manifest.is_file():
        write_manifest(layout, cfg, job, {s: {"planned": len(v), "rendered": 0, "status": "rendering"}
                                          for s, v in expected.items()})
    t0 = time.perf_counter()
    if todo:
        _render(cfg, layout, todo, workers, chunk, progress, stats)
    stats.seconds = time.perf_counter() - t0
    stats.scenes = len(todo)
    if n == 1:   # shards merge once all are done: `scenes2real merge DIR`
        stats.status = merge(layout, cfg, expected)
        write_manifest(layout, cfg, job, stats.status)
    return stats


def _render(cfg, layout, todo, workers, chunk, progress, stats) -> None:
    workers = max(1, workers)
    chunk = chunk or max(1, min(64, math.ceil(len(todo) / (workers * 4))))
    chunks = [todo[i:i + chunk] for i in range(0, len(todo), chunk)]
    sprite_objects = []
    if cfg.render.style == "flat" and cfg.render.composite:
        seen = set()
        for s in todo:
            for o in s.objects:
                key = (o.shape, o.size, o.cell)
                if key not in seen:
                    seen.add(key)
                    sprite_objects.append({"role": o.role, "shape": o.shape, "color": o.color, "size": o.size,
                                           "material": o.material, "cell": list(o.cell), "area": o.area})
    ctx = multiprocessing.get_context("spawn")   # a fresh interpreter: bpy must not be forked
    # bpy leaks over thousands of renders: workers are replaced every few hundred scenes, by running the
    # pool in waves (max_tasks_per_child can deadlock the pool on Python 3.11). Composited flat scenes
    # make no Blender call per scene, so their workers live for the whole job.
    composite = cfg.render.style == "flat" and cfg.render.composite
    per_wave = len(chunks) if composite else max(1, cfg.render.workers_restart_every // chunk) * workers
    threads = max(1, (os.cpu_count() or 1) // workers)   # each worker's share of the cores
    initargs = (cfg.model_dump(mode="json"), str(layout.root), sprite_objects, threads)
    with _progress(progress, len(todo)) as bar:
        for start in range(0, len(chunks), per_wave):
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init,
                                     initargs=initargs) as pool:
                futures = [pool.submit(_render_chunk, [s.to_json() for s in c])
                           for c in chunks[start:start + per_wave]]
                for fut in as_completed(futures):
                    r = fut.result()
                    stats.worker_seconds += r["seconds"]
                    stats.engine_seconds += r["engine_seconds"]
                    stats.peak_rss_mb.append(r["peak_rss_mb"])
                    bar(r["scenes"])


def _init(*args):
    # a parent that imported bpy passes Blender's script folders on in sys.path; there, `import bpy`
    # would find Blender's inner package instead of the module
    sys.path[:] = [p for p in sys.path if f"{os.sep}scripts{os.sep}" not in p or "bpy" not in p]
    os.environ["LP_NUM_THREADS"] = str(args[-1])   # Workbench draws with Mesa's llvmpipe: its threads
    from .render.worker import init
    init(*args)


def _render_chunk(specs):
    from .render.worker import render_chunk
    return render_chunk(specs)


class _progress:
    """A rich progress bar (scenes done, rate, time left), or nothing."""

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total = enabled, total

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)
        from rich.text import Text

        class Rate(ProgressColumn):
            def render(self, task):
                return Text(f"{task.speed or 0:.1f} scenes/s")

        self.p = Progress(TextColumn("rendering"), BarColumn(), MofNCompleteColumn(), Rate(),
                          TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn())
        self.p.start()
        task = self.p.add_task("render", total=self.total)
        return lambda n: self.p.advance(task, n)

    def __exit__(self, *exc):
        if self.enabled:
            self.p.stop()
        return False


def merge_dataset(out: str | Path) -> dict:
    """`scenes2real merge`: build the split files of a (sharded) dataset from its per-scene JSON."""
    layout = DatasetLayout(out)
    manifest = layout.read_manifest()
    if not manifest:
        raise InputError(f"{layout.manifest}: file not found (expected a dataset rendered by scenes2real)")
    cfg = DesignFile.model_validate(manifest["config"])
    chosen = select(plan(cfg), manifest["job"]["splits"], manifest["job"]["limit"])
    expected = {split: [s.id for s in members] for split, members in chosen.items()}
    status = merge(layout, cfg, expected)
    write_manifest(layout, cfg, manifest["job"], status)
    return status
