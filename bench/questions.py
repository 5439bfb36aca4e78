"""Benchmark of `scenes2real questions coco` at COCO 2017 scale; prints JSON.

Writes a random COCO-shaped instances file of val2017's size (5k images, 36k annotations) and one of
train2017's size (118k images, 860k annotations, ~450 MB like the real one) in a temp dir, then builds the
questions in a fresh process for each file and task set, and reports wall seconds and the process's peak
memory. Task sets by default: area9 alone, area9 with the two relation tasks (pairs of unique objects), the
relation tasks alone, and the four area tasks. Targets: val-size <= 3 s; train-size <= 60 s and <= 4 GB, area9
and the relations together included; the four area tasks on train-size <= 20 s and <= 1.5 GB (issue 14). `seconds` is wall time, which grows when other processes share the CPU; `cpu_seconds` is
the builder's own CPU time.

    python bench/questions.py [--only val|train] [--tasks area9,horizontal,vertical,open] [--tasks ...] [--keep DIR]
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

SIZES = {"val": (5_000, 36_781), "train": (118_287, 860_001)}
TASK_SETS = ["area9", "area9,left_right,above_below", "left_right,above_below", "area9,horizontal,vertical,open"]

# Runs in a fresh interpreter so the peak memory is the question builder's alone.
CHILD = """
import json, resource, sys, time
t0 = time.perf_counter()
from evaluation.coco import CocoQuestionSettings, write_coco_questions
t1, c1 = time.perf_counter(), time.process_time()
settings = CocoQuestionSettings(tasks=sys.argv[3].split(","))
summary = write_coco_questions(sys.argv[1], sys.argv[2], settings=settings)
t2, c2 = time.perf_counter(), time.process_time()
print(json.dumps({"seconds": round(t2 - t1, 2), "cpu_seconds": round(c2 - c1, 2), "import_seconds": round(t1 - t0, 2),
                  "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
                  "targets": summary["targets"], "questions": summary["questions"],
                  "dropped": summary["dropped"], "pairs": summary.get("relations", {}).get("pairs")}))
"""


def _build(instances: Path, out: Path, tasks: str) -> dict:
    """Build one task set's questions in a fresh interpreter; its figures, and the output's size."""
    t0 = time.perf_counter()
    child = subprocess.run([sys.executable, "-c", CHILD, str(instances), str(out), tasks],
                           cwd=ROOT, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    result = json.loads(child.stdout)
    result.update(process_wall_seconds=round(wall, 2), output_mb=round(out.stat().st_size / 2**20, 1))
    out.unlink()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SIZES))
    parser.add_argument("--keep", type=Path, help="write the generated instances files into this folder and keep "
                        "them (for profiling the builder on them)")
    parser.add_argument("--tasks", action="append", help="a comma-separated task set (repeatable); "
                        f"default: {' and '.join(TASK_SETS)}")
    args = parser.parse_args()
    task_sets = args.tasks or TASK_SETS
    from bench.provenance import provenance
    from tests.coco_fixtures import write_random_instances

    results: dict = {"task_sets": task_sets}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (n_images, n_annotations) in SIZES.items():
            if args.only and name != args.only:
                continue
            folder = args.keep or Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            instances = folder / f"instances_{name}2017.json"
            t0 = time.perf_counter()
            write_random_instances(instances, n_images, n_annotations, seed=0)
            generated = time.perf_counter() - t0
            results[name] = {"images": n_images, "annotations": n_annotations,
                             "file_mb": round(instances.stat().st_size / 2**20, 1),
                             "generate_seconds": round(generated, 1)}
            for tasks in task_sets:
                results[name][tasks] = _build(instances, Path(tmp) / f"{name}.jsonl", tasks)
            if not args.keep:
                instances.unlink()
    print(json.dumps({"bench": "questions", **results, **provenance(seed=0)}, indent=2))


if __name__ == "__main__":
    main()
