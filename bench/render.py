"""Render benchmark: for each preset at its own size (336x336), scenes per second with 1 and 2 workers,
the share of worker time spent outside Blender's render call, and the peak memory of a worker.

    python bench/render.py                      # civet (whole, 5,508 scenes), solid (96), clevr (8)
    python bench/render.py --preset solid --scenes 200

Prints one JSON object (with the command, seed and versions: keep it in bench/results/render.json).
Targets (issue 3): civet whole in <= 60 s with 2 workers; solid >= 4 scenes/s with 2 workers; clevr: share
outside the render call <= 10%, 2 workers >= 1.7x one worker."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout: python bench/render.py

from bench.provenance import provenance  # noqa: E402
from blender_scenes.batch import run  # noqa: E402
from blender_scenes.config import load_preset  # noqa: E402
from blender_scenes.plan import plan  # noqa: E402

DEFAULT = {"civet": None, "solid": 96, "clevr": 8}   # scenes per job (None = the whole preset)


def job(preset: str, scenes: int | None, workers: int) -> dict:
    cfg = load_preset(preset)
    n_splits = len({s.split for s in plan(cfg)})
    limit = None if scenes is None else max(1, scenes // n_splits)
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        stats = run(cfg, out, limit=limit, workers=workers, progress=False)
        wall = time.perf_counter() - t0
    return {"workers": workers, "scenes": stats.scenes, "wall_s": round(wall, 2),
            "scenes_per_s": round(stats.scenes / wall, 2),
            "outside_render_share": round(1 - stats.engine_seconds / stats.worker_seconds, 3),
            "peak_rss_mb_per_worker": round(max(stats.peak_rss_mb), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", action="append", help="preset to run (repeatable); default civet, solid, clevr")
    ap.add_argument("--scenes", type=int, help="scenes per job (default: whole civet, 96 solid, 8 clevr)")
    args = ap.parse_args()
    presets = args.preset or list(DEFAULT)
    out = {"bench": "render", "presets": {}}
    for preset in presets:
        n = args.scenes if args.scenes is not None else DEFAULT.get(preset, 48)
        one, two = job(preset, n, 1), job(preset, n, 2)
        out["presets"][preset] = {"one_worker": one, "two_workers": two,
                                  "speedup_2_vs_1": round(two["scenes_per_s"] / one["scenes_per_s"], 2)}
        print(json.dumps({preset: out["presets"][preset]}), file=sys.stderr, flush=True)   # progress
    print(json.dumps({**out, **provenance(seed=0)}, indent=2))


if __name__ == "__main__":
    main()
