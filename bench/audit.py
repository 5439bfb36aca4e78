"""Benchmark of `scenes2real audit` on the full civet preset (5,508 flat scenes at 336x336).

Renders civet once into a cache folder (default /tmp/scenes2real-bench-civet, --resume finishes an interrupted
render) unless --dataset points at a rendered dataset, audits it and prints JSON: seconds, images/s, failures.
Target: under 60 s on the 2-core development machine."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout: python bench/audit.py

from bench.provenance import provenance  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", help="A rendered dataset to audit (default: render civet into --cache).")
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "scenes2real-bench-civet"))
    ap.add_argument("--preset", default="civet")
    ap.add_argument("--workers", type=int, default=2, help="Audit (and render) worker processes.")
    args = ap.parse_args()
    render_seconds = None
    path = Path(args.dataset or args.cache)
    if not args.dataset:
        from blender_scenes.batch import run
        from blender_scenes.config import load_preset
        cfg = load_preset(args.preset)
        manifest = path / "manifest.json"
        done = manifest.is_file() and all(v == "complete" for v in json.loads(manifest.read_text())["status"].values())
        if not done:
            t0 = time.perf_counter()
            run(cfg, path, workers=args.workers, resume=manifest.is_file(), progress=False)
            render_seconds = round(time.perf_counter() - t0, 1)
    from blender_scenes.audit.run import audit_path
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        report = audit_path(path, out, workers=args.workers)
        seconds = time.perf_counter() - t0
    h = report["headline"]
    print(json.dumps({
        "bench": "audit", "dataset": str(path), "scenes": h["scenes"], "images": h["images"],
        "seconds": round(seconds, 2), "images_per_s": round(h["images"] / seconds, 1),
        "labels_verified_share": h["labels_verified_share"], "failures": h["failures"],
        "workers": args.workers, "render_seconds": render_seconds, **provenance(seed=0),
    }, indent=2))


if __name__ == "__main__":
    main()
