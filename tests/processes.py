"""Running `scenes2real` of the code under test in its own process (group), and killing a render mid-way."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.Popen:
    """`scenes2real ...` in its own process group (so a kill takes its workers), output as text."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "scenes2real", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd, start_new_session=True)


def ok(*args: str, **kw) -> str:
    """Run a command to its end; its output, asserting exit status 0."""
    proc = cli(*args, **kw)
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out
    return out


def kill_when_rendered(proc: subprocess.Popen, out: Path, scenes: int, timeout: float = 300) -> int:
    """SIGKILL a render job (and its workers) once `scenes` scene records are on disk; how many there were."""
    deadline = time.time() + timeout
    while len(list(out.glob("scenes/*/*.json"))) < scenes and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return len(list(out.glob("scenes/*/*.json")))
