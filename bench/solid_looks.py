"""What the `solid` look costs (not a test): Workbench's beauty pass with other anti-aliasing and shadow
settings, each scene's CPU time and its PSNR against the shipped render of the same scene.

Renders `--scenes` scenes of the `solid` preset as shipped (one worker), then renders the first `--compare` of
them again in this process with each setting (anti-aliasing 8 samples = the shipped look, 5 samples, FXAA, off;
shadows on and off) and compares the pixels. Issue 14 asks for >= 12 solid scenes/s on 2 cores, about 165 CPU-ms
a scene in all; the shipped beauty pass alone takes ~350.

    python bench/solid_looks.py [--scenes 20] [--compare 12]

Prints one JSON object (with the command, seed and versions); kept in bench/results/solid-looks.json.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LOOKS = [("8", True), ("5", True), ("FXAA", True), ("OFF", True), ("8", False), ("FXAA", False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--compare", type=int, default=12)
    args = parser.parse_args()
    import cv2

    from bench.provenance import provenance
    from bench.render import psnr
    from blender_scenes.annotate import spec_of_record
    from blender_scenes.config import load_preset
    from blender_scenes.render.worker import build_renderer

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "solid"
        subprocess.run([sys.executable, "-m", "scenes2real", "render", "--preset", "solid", "--limit",
                        str(args.scenes), "--workers", "1", "--out", str(data)],
                       check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        records = [json.loads(p.read_text()) for p in sorted(data.glob("scenes/*/*.json"))][:args.compare]
        shipped = [cv2.imread(str(data / r["image"]), cv2.IMREAD_UNCHANGED)[..., ::-1] for r in records]
        renderer = build_renderer(load_preset("solid"), threads=1)
        looks = []
        for aa, shadows in LOOKS:
            renderer.beauty.display.render_aa = aa
            renderer.beauty.display.shading.show_shadows = shadows
            scores, cpu = [], 0.0
            for record, image in zip(records, shipped):
                started = time.process_time()
                rendered = renderer.render(spec_of_record(record))[0]
                cpu += time.process_time() - started
                scores.append(psnr(rendered, image))
            looks.append({"antialiasing": aa, "shadows": shadows, "shipped": (aa, shadows) == ("8", True),
                          "cpu_ms_per_scene": round(1000 * cpu / len(records)),
                          "psnr_db_min": min(scores), "psnr_db_mean": round(sum(scores) / len(scores), 2)})
            print(json.dumps(looks[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"bench": "solid-looks", "scenes_compared": len(records), "threads": 1,
                      "cpu_ms_per_scene_is": "the whole render call (beauty and index passes), this process",
                      "looks": looks, **provenance(seed=0)}, indent=2))


if __name__ == "__main__":
    main()
