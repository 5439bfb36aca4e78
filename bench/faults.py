"""Benchmark of how fast a job ends under signals, and what the output lock costs.

For `render --preset civet --workers 2`, signalled once its first 20 scenes are on disk (--repeat times each):
seconds from SIGTERM to the parent's exit and until every process under it (the two bpy workers and
multiprocessing's resource tracker) is gone; and, with the parent killed by SIGKILL (no handler runs), seconds
until the workers notice and exit. Also the microseconds one lock acquire + release takes (median of 500, on
the folder given by --work). Prints JSON with the command, versions and load (bench/provenance.py).
Run from a checkout: python bench/faults.py > bench/results/faults.json"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))   # run from a checkout: python bench/faults.py

from bench.provenance import provenance  # noqa: E402
from blender_scenes.lock import acquire, release  # noqa: E402


def _started_render(out: Path) -> tuple[subprocess.Popen, list[psutil.Process]]:
    proc = subprocess.Popen([sys.executable, "-m", "scenes2real", "render", "--preset", "civet", "--out", str(out),
                             "--workers", "2", "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
    while len(list(out.glob("scenes/*/*.json"))) < 20:
        if proc.poll() is not None:
            raise SystemExit(f"render exited with {proc.returncode} before its first scenes")
        time.sleep(0.01)
    return proc, psutil.Process(proc.pid).children(recursive=True)


def _wait_gone(processes: list[psutil.Process], t0: float) -> float:
    while [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]:
        time.sleep(0.005)
    return round(time.perf_counter() - t0, 3)


def signal_figures(work: Path, repeat: int) -> dict:
    term, kill = [], []
    for i in range(repeat):
        proc, children = _started_render(work / f"term{i}")
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        parent = round(time.perf_counter() - t0, 3)
        term.append({"parent_exit_s": parent, "all_gone_s": _wait_gone(children, t0), "exit_status": proc.returncode,
                     "processes_under_it": len(children)})
        proc, children = _started_render(work / f"kill{i}")
        t0 = time.perf_counter()
        proc.kill()
        proc.wait()
        kill.append({"workers_gone_s": _wait_gone(children, t0), "processes_under_it": len(children)})
    return {"sigterm": term, "sigkill_parent": kill,
            "sigterm_all_gone_s_median": statistics.median(r["all_gone_s"] for r in term),
            "sigkill_workers_gone_s_median": statistics.median(r["workers_gone_s"] for r in kill)}


def lock_figures(work: Path, n: int = 500) -> dict:
    target = work / "locked"
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        acquire(target, "bench")
        release(target)
        times.append(time.perf_counter() - t0)
    return {"acquire_release_us_median": round(statistics.median(times) * 1e6, 1), "n": n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, help="Scratch folder (default: a new temporary one, removed).")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-faults-"))
    try:
        result = {"render_signals": signal_figures(work, args.repeat), "lock": lock_figures(work)}
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({**result, **provenance()}, indent=2))


if __name__ == "__main__":
    main()
