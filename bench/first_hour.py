"""What the README's set-up commands cost on a fresh machine: disk and time of command 1 (install, render the
demo, audit it) and, with --tests, of the default test run.

Creates a fresh venv (default under /tmp), installs this checkout into it without pip's cache, measures the
venv's size on disk, then runs command 1's render and audit in an empty folder and times each step. With
--tests it also installs `.[train,test]` and runs `pytest -q` from the checkout (about 10 minutes on 2 cores).
Needs the package index (PyPI). Prints JSON (bench/results/first-hour.json)."""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))   # run from a checkout: python bench/first_hour.py

from bench.provenance import provenance  # noqa: E402


def _timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    seconds = round(time.perf_counter() - t0, 1)
    if res.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout[-2000:]}{res.stderr[-2000:]}")
    return seconds, res.stdout + res.stderr


def _size_mb(path: Path) -> float:
    total = sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return round(total / 2**20, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--venv", default=str(Path(tempfile.gettempdir()) / "scenes2real-bench-venv"))
    ap.add_argument("--tests", action="store_true", help="Also install .[train,test] and time `pytest -q`.")
    args = ap.parse_args()
    venv = Path(args.venv)
    shutil.rmtree(venv, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix="scenes2real-first-hour-"))
    result: dict = {"what": "README command 1 (and 2 with --tests) on a fresh venv"}
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_ = venv / "bin"
    result["install_seconds"], _ = _timed([str(bin_ / "pip"), "install", "-q", "--no-cache-dir", "-e", str(ROOT)],
                                          work)
    result["venv_mb"] = _size_mb(venv)
    result["render_demo_seconds"], _ = _timed([str(bin_ / "scenes2real"), "render", "--preset", "demo",
                                               "--out", "out/demo", "--quiet"], work)
    result["audit_demo_seconds"], out = _timed([str(bin_ / "scenes2real"), "audit", "out/demo"], work)
    result["audit_headline"] = next((line for line in out.splitlines() if line.startswith(("ok:", "FAIL"))), None)
    result["demo_dataset_mb"] = _size_mb(work / "out" / "demo")
    if args.tests:
        result["install_train_test_seconds"], _ = _timed(
            [str(bin_ / "pip"), "install", "-q", "--no-cache-dir", "-e", f"{ROOT}[train,test]"], work)
        result["venv_train_test_mb"] = _size_mb(venv)
        result["tests_seconds"], out = _timed([str(bin_ / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                                              ROOT)
        result["tests_summary"] = next((m.group(0) for m in re.finditer(r"\d+ passed.*", out)), None)
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(venv, ignore_errors=True)
    print(json.dumps({**result, "provenance": provenance()}, indent=2))


if __name__ == "__main__":
    main()
