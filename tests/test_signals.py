"""Jobs under real signals, kills and full disks: SIGTERM / SIGINT / SIGHUP end a render whole within seconds
(workers gone, scratch removed, one `error:` line, resumable); workers of a parent killed by SIGKILL exit by
themselves; the next job removes what dead writers left; a full disk is one line, and the job finishes after
space is freed. Full-disk tests mount a small tmpfs (root only; skipped with the reason elsewhere)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from tests.coco_fixtures import hard_case_instances, write_instances
from tests.processes import ROOT, cli, ok
from tests.test_runner import dataset  # noqa: F401  (fixture: 6 questions with their images)


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def started_render(out: Path, scratch: Path) -> tuple[subprocess.Popen, list[psutil.Process]]:
    """civet with 2 workers (a few thousand scenes: still running when signalled), once its first scenes are
    written; with the processes under it (workers, multiprocessing's resource tracker)."""
    proc = cli("render", "--preset", "civet", "--out", out, "--workers", "2", "--quiet",
               env={"SCENES2REAL_SCRATCH": str(scratch)})
    wait_for(lambda: len(list(out.glob("scenes/*/*.json"))) >= 20 or proc.poll() is not None, 300, "scenes")
    assert proc.poll() is None, proc.communicate()[0]
    return proc, psutil.Process(proc.pid).children(recursive=True)


def gone(processes: list[psutil.Process]) -> bool:
    return not [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_ends_a_render_whole_and_it_resumes(tmp_path, signum):
    out, scratch = tmp_path / "ds", tmp_path / "scratch"
    proc, children = started_render(out, scratch)
    assert len(children) >= 3   # two workers and the resource tracker
    proc.send_signal(signum)    # the parent alone, as a scheduler or a closed terminal does
    text = proc.communicate(timeout=20)[0]
    assert proc.returncode == 128 + signum, text
    assert [line for line in text.splitlines() if line.startswith("error:")] == [
        f"error: stopped by {signal.Signals(signum).name}; what was finished is kept: run the command again "
        f"(with --resume where it has one)"]
    wait_for(lambda: gone(children), 10, "the workers to exit")
    assert not list(scratch.glob("scenes2real-*")), list(scratch.iterdir())
    assert not list(out.rglob(".*.tmp"))
    assert json.loads((out / "manifest.json").read_text())["status"]["test"] == "rendering"
    ok("render", "--preset", "civet", "--out", out, "--workers", "2", "--quiet", "--resume",
       env={"SCENES2REAL_SCRATCH": str(scratch)})
    assert len(list(out.glob("scenes/*/*.json"))) == 5508



_OPENAT = {"x86_64": 257, "aarch64": 56}.get(os.uname().machine)

# a render worker's SIGTERM handler, caught while it writes a file: its open() of the temporary blocks on a FIFO
# put at that name, so the signal lands mid-write every time
_WRITER = """
import os, signal, sys
from pathlib import Path
from blender_scenes import batch
from blender_scenes.files import atomic_write_bytes, temporary_name
target = Path(sys.argv[1])
os.mkfifo(temporary_name(target))
signal.signal(signal.SIGTERM, batch._exit_on_sigterm)
atomic_write_bytes(target, b"never written")
"""


@pytest.mark.skipif(_OPENAT is None, reason="the openat syscall number of this machine is not known here")
def test_a_worker_stopped_mid_write_leaves_no_temporary(tmp_path):
    target = tmp_path / "images" / "000001.png"
    target.parent.mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    syscall = Path(f"/proc/{proc.pid}/syscall")
    wait_for(lambda: proc.poll() is not None or syscall.read_text().split(" ")[0] == str(_OPENAT), 60,
             "the writer to block in open()")
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    assert list(target.parent.iterdir()) == []   # neither the temporary nor the target

def test_workers_exit_when_their_parent_is_killed(tmp_path):
    out, scratch = tmp_path / "ds", tmp_path / "scratch"
    proc, children = started_render(out, scratch)
    os.kill(proc.pid, signal.SIGKILL)   # no handler runs in the parent
    proc.wait()
    wait_for(lambda: gone(children), 15, "the workers and the resource tracker to exit")
    # each worker removed its own scratch; the parent's shared sprites remain until the next job
    leftovers = sorted(p.name for p in scratch.glob("scenes2real-*"))
    assert leftovers == [f"scenes2real-{proc.pid}-sprites"], leftovers
    text = ok("render", "--preset", "civet", "--out", out, "--workers", "2", "--quiet", "--resume",
              env={"SCENES2REAL_SCRATCH": str(scratch)})
    assert "taking over the lock" in text
    assert not list(scratch.glob("scenes2real-*"))


def test_the_next_job_removes_a_killed_writers_temporary_file(tmp_path):
    """A writer killed by SIGKILL mid-write (no handler runs) leaves `.NAME.HOST-PID.tmp`; the next job writing
    NAME removes it, and leaves a live writer's alone."""
    instances = write_instances(tmp_path / "instances_val2017.json", hard_case_instances())
    out = tmp_path / "coco.jsonl"
    writer = subprocess.Popen(
        [sys.executable, "-c", f"import time\nfrom blender_scenes.files import temporary_name\n"
                               f"fh = open(temporary_name(__import__('pathlib').Path({str(out)!r})), 'wb')\n"
                               f"fh.write(b'x' * 1_000_000); fh.flush(); print('writing', flush=True)\n"
                               f"time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert writer.stdout.readline().strip() == "writing"
    writer.kill()
    writer.wait()
    leftover = tmp_path / f".coco.jsonl.{socket.gethostname()}-{writer.pid}.tmp"
    assert leftover.stat().st_size == 1_000_000
    live = tmp_path / f".coco.jsonl.{socket.gethostname()}-{os.getpid()}.tmp"   # a live writer's: kept
    live.write_bytes(b"y")
    ok("questions", "coco", "--instances", instances, "--out", out)
    assert out.is_file() and not leftover.exists() and live.exists()


@contextmanager
def small_disk(folder: Path, size: str):
    """A tmpfs of `size` mounted on `folder` (root only); yields a function that grows it."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield lambda new: subprocess.run(["mount", "-o", f"remount,size={new}", str(folder)], check=True)
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def one_error(proc: subprocess.Popen) -> str:
    text = proc.communicate(timeout=300)[0]
    assert proc.returncode == 1, text
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, text
    return errors[0]


def test_a_full_disk_stops_a_render_in_one_line_and_it_finishes_after_space_is_freed(tmp_path):
    disk = tmp_path / "disk"
    with small_disk(disk, "160k") as grow:
        out = disk / "ds"
        line = one_error(cli("render", "--preset", "demo", "--out", out, "--workers", "2", "--quiet"))
        assert f"{out}/" in line and "No space left on device" in line and "--resume" in line
        assert not list(out.rglob(".*.tmp"))
        grow("20m")
        ok("render", "--preset", "demo", "--out", out, "--workers", "2", "--quiet", "--resume")
        assert "failures: 0" in ok("audit", out, "--strict")


def test_a_full_disk_stops_coco_questions_in_one_line(tmp_path):
    instances = write_instances(tmp_path / "instances_val2017.json", hard_case_instances())
    disk = tmp_path / "disk"
    with small_disk(disk, "8k") as grow:
        out = disk / "coco.jsonl"
        (disk / "filler").write_bytes(b"\0" * 4096)   # one page left: the lock's holder file fits, no more
        line = one_error(cli("questions", "coco", "--instances", instances, "--out", out))
        assert str(out) in line and "No space left on device" in line
        assert not out.exists() and [p.name for p in disk.iterdir()] == ["filler"]
        grow("1m")
        ok("questions", "coco", "--instances", instances, "--out", out)
        assert out.stat().st_size > 0


def test_an_evaluation_stopped_by_sigterm_says_so_and_resumes(tmp_path, tiny_checkpoint, dataset):  # noqa: F811
    model, questions, out = tiny_checkpoint("qwen2_5_vl"), dataset / "questions" / "test.jsonl", tmp_path / "run"
    proc = cli("evaluate", "--model", model, "--questions", questions, "--out", out, "--batch-size", "1")

    def answering() -> bool:
        try:
            return json.loads((out / "run.json").read_text())["status"] == "running"
        except (FileNotFoundError, ValueError):
            return False

    wait_for(lambda: answering() or proc.poll() is not None, 300, "the run to start answering")
    os.killpg(proc.pid, signal.SIGSTOP)   # held mid-run; the signal lands when it goes on
    proc.send_signal(signal.SIGTERM)
    os.killpg(proc.pid, signal.SIGCONT)
    text = proc.communicate(timeout=60)[0]
    assert proc.returncode == 143, text
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "stopped" and run["stopped_by"] == "Interrupted"
    answered = len((out / "predictions.jsonl").read_text().splitlines())
    assert answered < 6
    ok("evaluate", "--model", model, "--questions", questions, "--out", out, "--batch-size", "1")
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["answered_now"] == 6 - answered
