"""A render job: plan -> select (splits, limit, shard) -> skip what is done (resume) -> render in
worker processes (each imports bpy once and is replaced every few hundred scenes, since bpy leaks) ->
merge split files -> manifest. Imports no bpy itself: `render.worker` (bpy) is imported inside the functions
that run in a worker, or that render one scene in this process on request."""
from __future__ import annotations

import atexit
import ctypes
import math
import multiprocessing
import os
import shutil
import signal
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.text import Text

from .annotate import merge, spec_of_record
from .assets import check_design, load_library
from .assets.manage import check_assets
from .config import SPLITS, DesignFile, parse_design
from .dataset import PLAN, DatasetLayout, read_plan, select, write_plan
from .errors import InputError
from .files import atomic_write_json, read_json, remove_own_temporaries, scratch_base
from .plan import SceneSpec, package_versions, plan, plan_versions

_PR_SET_PDEATHSIG = 1   # linux/prctl.h


@dataclass
class JobStats:
    scenes: int = 0
    skipped: int = 0
    seconds: float = 0.0
    worker_seconds: float = 0.0
    engine_seconds: float = 0.0
    peak_rss_mb: list[float] = field(default_factory=list)
    status: dict = field(default_factory=dict)   # per split: planned, rendered, status, design (see status_line)


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


def job_limit(out: str | Path, limit: int | None, resume: bool, shard: str | None = None,
              config_hash: str | None = None) -> tuple[int | None, str | None]:
    """The --limit a job renders with, and the line that says so when it is not simply the one given. A resumed
    folder keeps the limit its manifest records (its `job`) unless a higher --limit is given; a lower one, or
    a limit on a folder of the whole design, is refused (the split files would leave rendered scenes out).
    The shards of one job must all give the same --limit (`_stored_plan` says so); a resumed one may omit it."""
    job = _recorded_job(out, config_hash) if resume else None
    if job is None:
        return limit, None   # nothing to keep; another design's folder is refused by `_stored_plan`
    recorded = job.get("limit")
    where = DatasetLayout(out).manifest
    if limit is None:
        if recorded is None:
            return None, None
        more = "" if parse_shard(shard)[1] > 1 else "; a higher --limit renders more"
        return recorded, (f"resuming with the folder's limit: the first {recorded:,} scenes of each split "
                          f"(recorded in {where}{more})")
    if limit == recorded or parse_shard(shard)[1] > 1:
        return limit, None
    if recorded is None:
        raise InputError(f"{where}: field 'job.limit': the folder holds the whole design (no --limit); expected "
                         f"--resume without --limit, or another --out for --limit {limit}")
    if limit < recorded:
        raise InputError(f"{where}: field 'job.limit': the folder was rendered with --limit {recorded}; expected "
                         f"--limit {recorded} or more (or none) to resume it, or another --out for --limit {limit}")
    return limit, f"note: limit {recorded:,} -> {limit:,} (was recorded in the manifest)"


def job_splits(out: str | Path, splits: list[str] | None, resume: bool,
               config_hash: str | None = None) -> tuple[list[str] | None, str | None]:
    """The --split a job renders, and the line that says so when it is not the one given: a resumed folder
    rendered with --split keeps its splits (its manifest's `job`) unless --split is given again."""
    job = None if splits or not resume else _recorded_job(out, config_hash)
    if job is None:
        return splits, None
    recorded = job.get("splits")
    if not recorded:
        return None, None
    return list(recorded), (f"resuming with the folder's splits: {', '.join(recorded)} (recorded in "
                            f"{DatasetLayout(out).manifest}; --split names others)")


def _recorded_job(out: str | Path, config_hash: str | None) -> dict | None:
    """The `job` (--split, --limit) recorded in the manifest of a folder of this design, else None."""
    manifest = DatasetLayout(out).read_manifest()
    if not manifest or not isinstance(manifest.get("job"), dict) or manifest.get("config_hash") != config_hash:
        return None
    return manifest["job"]


def status_line(split: str, st: dict) -> str:
    """'train: 200/200 scenes (limited: 200 of 1,296)': rendered / planned by this job, and what the job's
    --limit leaves out of the design's scenes of that split."""
    design = st.get("design", st["planned"])
    state = st["status"]
    if st["planned"] < design:
        limited = f"limited: {st['planned']:,} of {design:,}"
        state = limited if state == "complete" else f"{state}; {limited}"
    return f"{split}: {st['rendered']:,}/{st['planned']:,} scenes ({state})"


def versions() -> dict:
    """The packages a render depends on, recorded in the manifest."""
    return package_versions(("scenes2real", "bpy", "numpy", "pycocotools", "opencv-python-headless"))


def _stored_plan(layout: DatasetLayout, cfg: DesignFile, job: dict, resume: bool, shard: bool) -> list[SceneSpec]:
    """The plan of a job: the one stored in the folder if it has one (same config required), else made now.
    Refuses a plain run into a folder that already holds scenes unless resuming; shards always share."""
    # scenes first, then the manifest: every writer writes the manifest before its first scene, so a shard that
    # started beside this one (and wrote both in between) is never mistaken for a folder of unknown scenes
    has_scenes = any(layout.root.glob("scenes/*/*.json"))
    manifest = layout.read_manifest()
    if not manifest:
        if has_scenes:
            raise InputError(f"{layout.root}: holds scenes but no manifest.json; choose another --out")
        return plan(cfg)
    if manifest.get("config_hash") != cfg.digest():
        raise InputError(f"{layout.manifest}: field 'config_hash': the dataset was rendered from another "
                         f"config ({manifest.get('config_hash')} != {cfg.digest()}); choose another --out")
    if shard and manifest.get("job") != job:
        raise InputError(f"{layout.manifest}: field 'job': the shards of this folder render {manifest.get('job')}, "
                         f"this one {job}; give every shard the same --split and --limit")
    if not (resume or shard) and any(layout.root.glob("scenes/*/*.json")):
        raise InputError(f"{layout.root}: already holds scenes of this design; use --resume to finish it")
    return read_plan(layout)[1] if layout.plan.is_file() else plan(cfg)


def write_manifest(layout: DatasetLayout, cfg: DesignFile, job: dict, status: dict) -> None:
    atomic_write_json(layout.manifest, {
        "name": cfg.name, "config": cfg.model_dump(mode="json"), "config_hash": cfg.digest(),
        "seed": cfg.seed, "versions": versions(), "plan": PLAN, "plan_versions": plan_versions(), "job": job,
        "counts": {s: {"planned": v["planned"], "rendered": v["rendered"]} for s, v in status.items()},
        "status": {s: v["status"] for s, v in status.items()},
    }, indent=2)


def run(cfg: DesignFile, out: str | Path, splits: list[str] | None = None, limit: int | None = None,
        workers: int = 1, shard: str | None = None, resume: bool = False, progress: bool = True,
        chunk: int | None = None) -> JobStats:
    """Render a design into `out`. With `shard="K/N"`, only scenes with index % N == K: any number of
    shards may share one folder, started at any time; `merge_dataset` then builds the split files."""
    check_design(cfg, f"design {cfg.name!r}")   # configs built in code skip parse_design's check
    if resume:   # a resumed folder keeps its recorded --split and --limit, called from the CLI or from code
        splits = job_splits(out, splits, resume, cfg.digest())[0]
        limit = job_limit(out, limit, resume, shard, cfg.digest())[0]
    layout = DatasetLayout(out)
    k, n = parse_shard(shard)
    job = {"splits": sorted(splits, key=SPLITS.index) if splits else None, "limit": limit}
    scenes = _stored_plan(layout, cfg, job, resume, shard=n > 1)
    chosen = select(scenes, splits, limit)
    check_user_assets(cfg)   # before anything is written: a broken asset must not leave a folder behind
    expected = {split: [s.id for s in members] for split, members in chosen.items()}
    mine = [s for members in chosen.values() for s in members if s.index % n == k]
    if not layout.plan.is_file():   # every writer stores the same bytes: a race between shards is harmless
        write_plan(layout, cfg, scenes, plan_versions())
    if n == 1 or not layout.manifest.is_file():
        write_manifest(layout, cfg, job, {s: {"planned": len(v), "rendered": 0, "status": "rendering"}
                                          for s, v in expected.items()})
    # what a killed writer of one of our scenes left; the scene is rendered again
    layout.remove_scene_leftovers({split: {s.id for s in mine if s.split == split} for split in chosen})
    done = {split: layout.rendered(split) for split in chosen}
    todo = [s for s in mine if s.id not in done[s.split]]
    stats = JobStats(skipped=len(mine) - len(todo))
    t0 = time.perf_counter()
    if todo:
        _render(cfg, layout, todo, workers, chunk, progress, stats)
    stats.seconds = time.perf_counter() - t0
    stats.scenes = len(todo)
    if n == 1:   # shards merge once all are done: `scenes2real merge DIR`
        stats.status = _merge(layout, cfg, job, expected, scenes)
    return stats


def _merge(layout: DatasetLayout, cfg: DesignFile, job: dict, expected: dict[str, list[str]],
           scenes: list[SceneSpec]) -> dict:
    """Build the split files of the `expected` scenes; the status per split, with the whole plan's count of the
    split (`design`: what no --limit would render)."""
    layout.remove_split_leftovers()
    status = merge(layout, cfg, expected)
    os.sync()   # once, not per file: a split is marked complete only when its files are on disk
    write_manifest(layout, cfg, job, status)
    design = Counter(s.split for s in scenes)
    return {split: {**st, "design": design.get(split, st["planned"])} for split, st in status.items()}


def check_user_assets(cfg: DesignFile) -> None:
    """Import the design's user assets (not the shipped ones, which the tests cover) in a fresh process,
    before any worker starts: a broken one is one InputError naming the asset and its manifest."""
    lib = load_library(cfg.assets)
    names = [s for s in cfg.factors.shapes if s in lib.user]
    if not names:
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=_clean_path) as pool:
        results = pool.submit(check_assets, cfg.assets, names).result()
    for name, problems in results:
        if problems:
            raise InputError(problems[0])


def _render(cfg, layout, todo, workers, chunk, progress, stats) -> None:
    workers = max(1, workers)
    chunk = chunk or max(1, min(64, math.ceil(len(todo) / (workers * 4))))
    chunks = [todo[i:i + chunk] for i in range(0, len(todo), chunk)]
    # bpy leaks over thousands of renders: workers are replaced every few hundred scenes, by running the
    # pool in waves (max_tasks_per_child can deadlock the pool on Python 3.11). Composited flat scenes
    # make no Blender call per scene, so their workers live for the whole job.
    composite = cfg.render.style == "flat" and cfg.render.composite
    per_wave = len(chunks) if composite else max(1, cfg.render.workers_restart_every // chunk) * workers
    threads = max(1, (os.cpu_count() or 1) // workers)   # each worker's share of the cores
    # the workers of a flat job draw each sprite once between them, in a folder named like a scratch folder
    # (scenes2real-PID-...), so a later job removes it if this one is killed
    sprites = scratch_base() / f"scenes2real-{os.getpid()}-sprites" if composite and workers > 1 else None
    initargs = (cfg.to_json(), str(layout.root), threads, str(sprites) if sprites else None)
    try:
        _run_waves(chunks, per_wave, workers, initargs, progress, len(todo), stats)
    finally:
        if sprites:
            shutil.rmtree(sprites, ignore_errors=True)


def _run_waves(chunks, per_wave, workers, initargs, progress, total, stats) -> None:
    ctx = multiprocessing.get_context("spawn")   # a fresh interpreter: bpy must not be forked
    with _progress(progress, total) as bar:
        for start in range(0, len(chunks), per_wave):
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init,
                                       initargs=(os.getpid(), *initargs))
            try:
                futures = [pool.submit(_render_chunk, [s.to_json() for s in c])
                           for c in chunks[start:start + per_wave]]
                for fut in as_completed(futures):
                    r = fut.result()
                    stats.worker_seconds += r["seconds"]
                    stats.engine_seconds += r["engine_seconds"]
                    stats.peak_rss_mb.append(r["peak_rss_mb"])
                    bar(r["scenes"])
            except BaseException:
                _stop_workers(pool)   # a signal or a failed scene: the job ends now, not after the queued chunks
                raise
            pool.shutdown()


def _stop_workers(pool: ProcessPoolExecutor, grace: float = 5.0) -> None:
    """SIGTERM every worker (each removes its scratch and exits; see `_exit_on_sigterm`), SIGKILL those still
    there after `grace` seconds, and drop the queued chunks."""
    processes = list((pool._processes or {}).values())   # the executor offers no public way to stop them
    for p in processes:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + grace
    for p in processes:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join()
    pool.shutdown(wait=False, cancel_futures=True)


def _clean_path():
    # a parent that imported bpy passes Blender's script folders on in sys.path; there, `import bpy`
    # would find Blender's inner package instead of the module
    sys.path[:] = [p for p in sys.path if f"{os.sep}scripts{os.sep}" not in p or "bpy" not in p]


def _init(parent: int, *args):
    _exit_with_parent(parent)
    _clean_path()
    os.environ["LP_NUM_THREADS"] = str(args[2])   # Workbench draws with Mesa's llvmpipe: its threads
    from .render.worker import init
    init(*args)


def _exit_with_parent(parent: int) -> None:
    """A worker ends with its job: SIGTERM (from the parent, or from the kernel when the parent dies, even by
    SIGKILL) runs the exit handlers (scratch removed) and exits; SIGINT is the parent's to handle."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:   # the parent died before the line above
        _exit_on_sigterm(signal.SIGTERM, None)


def _exit_on_sigterm(signum, frame):
    remove_own_temporaries()   # the file being written when the signal came (no `except` runs below os._exit)
    atexit._run_exitfuncs()   # the Scratch folder; not sys.exit: bpy may be mid-render in this thread
    os._exit(128 + signum)


def _render_chunk(specs):
    from .render.worker import render_chunk
    return render_chunk(specs)


class _Rate(ProgressColumn):
    def render(self, task):
        return Text(f"{task.speed or 0:.1f} scenes/s")


class _progress:
    """A rich progress bar (scenes done, rate, time left), or nothing."""

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total = enabled, total

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        self.p = Progress(TextColumn("rendering"), BarColumn(), MofNCompleteColumn(), _Rate(),
                          TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn())
        self.p.start()
        task = self.p.add_task("render", total=self.total)
        return lambda n: self.p.advance(task, n)

    def __exit__(self, *exc):
        if self.enabled:
            self.p.stop()
        return False


def merge_dataset(out: str | Path, assets: str | None = None) -> dict:
    """`scenes2real merge`: build the split files of a (sharded) dataset from its per-scene JSON and the
    stored plan."""
    layout = DatasetLayout(out)
    manifest = layout.read_manifest()
    if not manifest:
        raise InputError(f"{layout.manifest}: file not found (expected a dataset rendered by scenes2real)")
    cfg = parse_design(manifest["config"], f"{layout.manifest} (config)", assets)
    job = manifest["job"]
    scenes = read_plan(layout)[1]
    chosen = select(scenes, job["splits"], job["limit"])   # the job's --split and --limit, as recorded
    return _merge(layout, cfg, job, {split: [s.id for s in members] for split, members in chosen.items()}, scenes)


def render_scene_file(scene: str | Path, out: str | Path, assets: str | None = None) -> Path:
    """Re-render one scene from its JSON record alone into the dataset folder `out` (same relative paths);
    returns the image path. The record holds the config and the planned scene: no design file needed."""
    path = Path(scene)
    record = read_json(path, "a scene record, DATASET/scenes/SPLIT/ID.json")
    if not isinstance(record, dict) or "config" not in record or "option_index" not in record:
        raise InputError(f"{path}: field 'config': expected a scene record written by scenes2real >= 0.2 "
                         f"(it holds the config and option_index)")
    cfg = parse_design(record["config"], f"{path} (config)", assets)
    spec = spec_of_record(record, str(path))   # its id and split checked before bpy is imported
    from .render.worker import build_renderer, render_scene, write_scene

    layout = DatasetLayout(out)
    renderer = build_renderer(cfg)
    write_scene(layout, *render_scene(renderer, cfg, spec, layout))
    return layout.image(spec.split, spec.id)
