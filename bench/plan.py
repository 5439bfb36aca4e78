"""Benchmark of the scene planner: every shipped preset planned, timed and checked for balance.

Prints JSON: per preset the seconds `plan(load_preset(name))` takes (best and worst of --repeat runs in
this process; the imports are timed once, apart), the scenes and targets planned, a sha256 of the plan,
and per split the worst balance of the targets: `levels` and `pairs` are the largest max - min of a
factor's level counts and of a two-factor table inside one subset (the audit's measure; 1 = within one),
`share_gap` the largest distance of a level or pair count from its proportional share, inside a subset or
over the whole split (below 1 = within one of the share). Also the command, the seeds, the versions of
python and the packages, `plan_versions()`, and the machine and its load average (bench/provenance.py).
Target: every preset under 2 s on the 2-core development machine.
Run from a checkout: python bench/plan.py > bench/results/plan.json"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import Counter, defaultdict
from itertools import combinations
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout: python bench/plan.py

from bench.provenance import provenance  # noqa: E402

FACTORS = ("shape", "color", "size", "material", "area")


def balance(cfg, scenes) -> dict:
    """Worst balance per split, counted on targets (one per planned target: variation 0)."""
    targets = [s for s in scenes if s.variation == 0]
    spec = {sub.name: sub.split if sub.split is not None else dict(cfg.splits.fractions)
            for sub in cfg.design.subsets} or {None: dict(cfg.splits.fractions)}
    by_subset = defaultdict(list)
    for s in targets:
        by_subset[s.subset if s.subset in spec else None].append(s)
    out = {}
    for split in sorted({s.split for s in targets}, key=("train", "val", "test").index):
        levels = pairs = 0
        gap = 0.0
        whole_count, whole_share = Counter(), defaultdict(float)
        for name, members in by_subset.items():
            f = spec[name] if isinstance(spec[name], dict) else {spec[name]: 1.0}
            rows = [tuple(getattr(s.target, k) for k in FACTORS) for s in members]
            active = [a for a in range(len(FACTORS)) if len({r[a] for r in rows}) > 1]
            mine = [r for r, s in zip(rows, members) if s.split == split]
            for key in [(a,) for a in active] + list(combinations(active, 2)):
                total = Counter(tuple(r[a] for a in key) for r in rows)
                here = Counter(tuple(r[a] for a in key) for r in mine)
                spread = max(here[v] for v in total) - min(here[v] for v in total)
                if len(key) == 1:
                    levels = max(levels, spread)
                else:
                    pairs = max(pairs, spread)
                for v, n in total.items():
                    gap = max(gap, abs(here[v] - f.get(split, 0) * n))
                    whole_count[key, v] += here[v]
                    whole_share[key, v] += f.get(split, 0) * n
        gap = max([gap] + [abs(whole_count[k] - whole_share[k]) for k in whole_share])
        out[split] = {"targets": sum(s.split == split for s in targets), "levels": levels, "pairs": pairs,
                      "share_gap": round(gap, 3)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("presets", nargs="*", help="Presets to plan (default: every shipped preset).")
    ap.add_argument("--repeat", type=int, default=3, help="Plans per preset (the plan must not change).")
    args = ap.parse_args()
    t0 = time.perf_counter()
    from blender_scenes.config import load_preset, preset_names
    from blender_scenes.plan import plan, plan_versions
    import_seconds = time.perf_counter() - t0
    results = {}
    for name in args.presets or preset_names():
        seconds, digests = [], set()
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            cfg = load_preset(name)
            scenes = plan(cfg)
            seconds.append(time.perf_counter() - t0)
            digests.add(hashlib.sha256(json.dumps([s.to_json() for s in scenes]).encode()).hexdigest())
        results[name] = {"seconds": round(min(seconds), 3), "seconds_worst": round(max(seconds), 3),
                         "scenes": len(scenes), "targets": sum(s.variation == 0 for s in scenes),
                         "seed": cfg.seed, "sha256": digests.pop() if len(digests) == 1 else sorted(digests),
                         "splits": balance(cfg, scenes)}
    print(json.dumps({
        "bench": "plan", "plan_versions": plan_versions(), "repeat": args.repeat, "import_seconds": round(import_seconds, 3),
        "max_seconds": max(r["seconds_worst"] for r in results.values()), "presets": results,
        **provenance(seed=None),   # each preset's own seed is in its entry
    }, indent=2))


if __name__ == "__main__":
    main()
