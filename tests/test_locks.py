"""blender_scenes/lock.py through real processes: one writer per output (a second is refused naming the first),
the shards of one render job share their folder, a dead writer's lock is taken over, another host's is refused
with the way to clear it. A race is made deterministic by stopping the first writer (SIGSTOP) once it holds
its lock, running the second, and letting the first go on (SIGCONT)."""
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

import pytest

from blender_scenes.lock import lock_folder
from tests.processes import cli, ok
from tests.test_runner import dataset  # noqa: F401  (fixture: 6 questions with their images)


def holders(target: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in lock_folder(target).glob("*.json") if p.read_text()]


@contextmanager
def holding(proc: subprocess.Popen, target: Path, timeout: float = 120):
    """Wait until `proc` holds the lock of `target`, stop its process group for the block, then let it go on."""
    deadline = time.time() + timeout
    while not any(h["pid"] == proc.pid for h in holders(target)):
        assert proc.poll() is None, proc.communicate()[0]
        assert time.time() < deadline, "the writer never took its lock"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(proc.pid, signal.SIGCONT)


def refused(*args: str) -> str:
    """Run a command that must be refused: exit 2, one `error:` line; that line."""
    proc = cli(*args)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 2, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in out, out
    return errors[0]


def test_a_second_render_of_another_design_is_refused_and_the_first_stays_whole(tmp_path):
    out = tmp_path / "ds"
    first = cli("render", "--preset", "demo", "--out", out, "--quiet")
    with holding(first, out):
        line = refused("render", "--preset", "civet", "--out", out, "--quiet", "--limit", "3")
        assert f"pid {first.pid}" in line and "render --preset demo" in line and str(out) in line
        # every spelling of the folder is the same lock
        refused("render", "--preset", "civet", "--out", f"{out}/../{out.name}/", "--quiet")
    assert first.wait(300) == 0, first.communicate()[0]
    assert len(list(out.glob("scenes/*/*.json"))) == 54
    assert "failures: 0" in ok("audit", out, "--strict")
    assert not lock_folder(out).exists()   # the last holder removes it


def test_shards_of_one_job_share_the_folder_and_other_settings_are_refused(tmp_path):
    out = tmp_path / "ds"
    first = cli("render", "--preset", "demo", "--out", out, "--shard", "0/2", "--quiet")
    with holding(first, out):
        # a shard of another job (other --limit), a plain render and merge all wait for the shards
        assert "in use by another writer" in refused("render", "--preset", "demo", "--out", out, "--shard", "1/2",
                                                     "--limit", "5", "--quiet")
        assert "in use by another writer" in refused("render", "--preset", "demo", "--out", out, "--quiet")
        assert "in use by another writer" in refused("merge", out)
        second = cli("render", "--preset", "demo", "--out", out, "--shard", "1/2", "--quiet")
        assert second.wait(300) == 0, second.communicate()[0]   # the same job's shard ran beside the first
    assert first.wait(300) == 0, first.communicate()[0]
    ok("merge", out)
    assert "failures: 0" in ok("audit", out, "--strict")


def test_two_evaluations_into_one_run_folder(tmp_path, tiny_checkpoint, dataset):  # noqa: F811
    model, questions, out = tiny_checkpoint("qwen2_5_vl"), dataset / "questions" / "test.jsonl", tmp_path / "run"
    first = cli("evaluate", "--model", model, "--questions", questions, "--out", out, "--max-new-tokens", "16")
    with holding(first, out):
        line = refused("evaluate", "--model", model, "--questions", questions, "--out", out,
                       "--max-new-tokens", "2")
        assert f"pid {first.pid}" in line and "--max-new-tokens 16" in line
    assert first.wait(300) == 0, first.communicate()[0]
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["max_new_tokens"] == 16
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 6
    # the scorer writes into the run folder too: it waits for no one now, and is refused while a run holds it
    ok("score", out, "--questions", questions)


def test_two_trainings_into_one_folder(tmp_path, tiny_checkpoint, dataset):  # noqa: F811
    model, questions, out = tiny_checkpoint("qwen2_5_vl"), dataset / "questions" / "test.jsonl", tmp_path / "run"
    first = cli("train", "--model", model, "--train", questions, "--out", out, "--epochs", "1", "--lr", "1e-3")
    with holding(first, out):
        line = refused("train", "--model", model, "--train", questions, "--out", out, "--epochs", "1",
                       "--lr", "1e-5")
        assert "--lr 1e-3" in line
    assert first.wait(300) == 0, first.communicate()[0]
    assert json.loads((out / "train_config.json").read_text())["lr"] == 1e-3
    assert (out / "best").is_dir()


def test_a_dead_writers_lock_is_taken_over_in_one_line(tmp_path):
    out = tmp_path / "ds"
    first = cli("render", "--preset", "demo", "--out", out, "--quiet")
    with holding(first, out):
        os.killpg(first.pid, signal.SIGKILL)
    assert holders(out)   # the killed writer's holder file is still there (and its zombie, not yet reaped)
    text = ok("render", "--preset", "demo", "--out", out, "--quiet", "--resume")
    notes = [line for line in text.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "taking over" in notes[0] and f"pid {first.pid}" in notes[0]
    assert "failures: 0" in ok("audit", out, "--strict")
    first.wait()


def test_a_reused_pid_is_not_the_writer(tmp_path):
    """A holder file whose pid now belongs to another process (started later) is a dead writer's."""
    out = tmp_path / "ds"
    folder = lock_folder(out)
    folder.mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        holder = {"host": socket.gethostname(), "pid": sleeper.pid, "pid_started": time.time() - 3600,
                  "command": "scenes2real render (an hour ago)", "started": "earlier", "job": None}
        (folder / f"{socket.gethostname()}-{sleeper.pid}.json").write_text(json.dumps(holder))
        text = ok("render", "--preset", "demo", "--out", out, "--quiet", "--limit", "1")
        assert "taking over" in text
    finally:
        sleeper.kill()
        sleeper.wait()


def test_another_hosts_lock_is_refused_with_the_way_to_clear_it(tmp_path):
    out = tmp_path / "coco.jsonl"
    folder = lock_folder(out)
    folder.mkdir(parents=True)
    stale = folder / "node17-4242.json"
    stale.write_text(json.dumps({"host": "node17", "pid": 4242, "pid_started": 0.0, "started": "yesterday",
                                 "command": "scenes2real questions coco ...", "job": None}))
    line = refused("questions", "coco", "--instances", tmp_path / "missing.json", "--out", out)
    assert "node17" in line and f"remove {stale}" in line
    stale.unlink()
    line = refused("questions", "coco", "--instances", tmp_path / "missing.json", "--out", out)
    assert "missing.json" in line   # the lock is free: the command got as far as reading its input


def test_concurrent_writers_start_at_once_and_exactly_one_wins(tmp_path):
    """Eight processes take one lock at the same instant (a barrier file): one holds it, seven are refused."""
    target = tmp_path / "out"
    go = tmp_path / "go"
    script = (f"import os, sys, time\nfrom pathlib import Path\nfrom blender_scenes.lock import acquire\n"
              f"from blender_scenes.errors import InputError\n"
              f"while not Path({str(go)!r}).exists(): time.sleep(0.001)\n"
              f"try:\n    acquire({str(target)!r}, 'test')\nexcept InputError:\n    sys.exit(3)\n"
              f"time.sleep(2)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env) for _ in range(8)]
    time.sleep(1.5)   # every interpreter is up and polling
    go.touch()
    codes = sorted(p.wait(60) for p in procs)
    assert codes == [0] + [3] * 7


@pytest.mark.parametrize("command", [
    ["tiny-model", "qwen2_5_vl", "--out", "{out}"],
    ["export", "{questions}", "--format", "trl", "--out", "{out}"],
    ["compare", "{out}", "--out", "{out}"],
])
def test_every_writing_command_is_refused_while_the_output_is_held(tmp_path, command, dataset):  # noqa: F811
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from blender_scenes.lock import acquire; import time; "
                               f"acquire({str(out)!r}, 'the test holder'); print('held', flush=True); "
                               f"time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    try:
        assert holder.stdout.readline().strip() == "held"
        args = [a.format(out=out, questions=dataset / "questions" / "test.jsonl") for a in command]
        assert "the test holder" in refused(*args)
    finally:
        holder.kill()
        holder.wait()
