"""`train` survives what cuts a checkpoint short (issue 20, finding 5): a SIGKILL just as `checkpoint-N/`
appears, and a full disk; `--resume` then goes on from the newest complete checkpoint, naming (and removing)
any incomplete one, and `best/` is renamed into place whole."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.processes import cli
from tests.question_sets import AREAS, write_question_set

FAMILY = "qwen2_5_vl"


@pytest.fixture
def questions(tmp_path) -> tuple[Path, Path]:
    train_file = write_question_set(tmp_path / "data", "train", [AREAS[i % 9] for i in range(4)])
    val_file = write_question_set(tmp_path / "data", "val", [AREAS[(2 * i + 1) % 9] for i in range(2)], seed=1)
    return train_file, val_file


def train_args(model, questions, out, epochs: int) -> list:
    return ["train", "--model", model, "--train", questions[0], "--val", questions[1], "--out", out,
            "--epochs", epochs, "--batch-size", 2, "--lora-r", 2, "--lr", "1e-3", "--patience", 10]


def finish(*args) -> tuple[int, str]:
    """Run `scenes2real ARGS` to its end: exit status and output."""
    proc = cli(*args)
    output = proc.communicate(timeout=300)[0]
    return proc.returncode, output


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --- what complete means -------------------------------------------------------------------------------------

@pytest.fixture
def checkpoint(tmp_path) -> Path:
    """A checkpoint folder laid out as the Trainer writes one for a LoRA run."""
    import torch
    from safetensors.torch import save_file

    folder = tmp_path / "checkpoints" / "checkpoint-4"
    folder.mkdir(parents=True)
    save_file({"a": torch.zeros(64), "b": torch.ones(3, 5)}, str(folder / "adapter_model.safetensors"))
    torch.save({"state": {0: torch.zeros(64)}}, folder / "optimizer.pt")
    torch.save({"last_epoch": 2}, folder / "scheduler.pt")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 4, "best_model_checkpoint": None}))
    return folder


def _cut(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("damage, problem", [
    (None, None),
    (lambda f: (f / "trainer_state.json").unlink(), "no trainer_state.json"),
    (lambda f: _cut(f / "trainer_state.json"), "trainer_state.json is cut short"),
    (lambda f: _cut(f / "adapter_model.safetensors", 0.9), "adapter_model.safetensors is cut short"),
    (lambda f: (f / "adapter_model.safetensors").unlink(), "no weights"),
    (lambda f: _cut(f / "optimizer.pt"), "optimizer.pt is cut short"),
    (lambda f: (f / "scheduler.pt").unlink(), "no scheduler.pt"),
])
def test_a_checkpoint_is_complete_only_when_every_file_is_whole(checkpoint, damage, problem):
    from vlm_train.resume import checkpoint_problem

    if damage:
        damage(checkpoint)
    assert checkpoint_problem(checkpoint) == problem


def test_resume_point_removes_incomplete_checkpoints_and_finds_a_moved_best(checkpoint, tmp_path):
    """checkpoint-4 is complete, checkpoint-6 was cut; the run folder was copied from /elsewhere."""
    import shutil

    from vlm_train.resume import resume_point

    checkpoints = checkpoint.parent
    state = {"global_step": 4, "best_model_checkpoint": "/elsewhere/run/checkpoints/checkpoint-4"}
    (checkpoint / "trainer_state.json").write_text(json.dumps(state))
    shutil.copytree(checkpoint, checkpoints / "checkpoint-6")
    (checkpoints / "checkpoint-6" / "trainer_state.json").unlink()
    notes: list[str] = []
    assert resume_point(checkpoints, notes.append) == str(checkpoint)
    assert notes == [f"note: --resume: {checkpoints / 'checkpoint-6'} is incomplete (no trainer_state.json): removed"]
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-4"]
    moved = json.loads((checkpoint / "trainer_state.json").read_text())["best_model_checkpoint"]
    assert moved == str(checkpoint)
    (checkpoint / "optimizer.pt").unlink()
    notes.clear()
    assert resume_point(checkpoints, notes.append) is None
    assert notes[-1] == f"note: --resume: no complete checkpoint in {checkpoints}: training starts from the beginning"


# --- a kill and a full disk, in real processes ---------------------------------------------------------------

def test_resume_after_a_kill_as_a_checkpoint_appears(tiny_checkpoint, questions, tmp_path):
    out = tmp_path / "run"
    proc = cli(*train_args(tiny_checkpoint(FAMILY), questions, out, epochs=4))
    deadline = time.time() + 120
    while not list(out.glob("checkpoints/checkpoint-*")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    cut = sorted(out.glob("checkpoints/checkpoint-*"))[-1]
    (cut / "trainer_state.json").unlink(missing_ok=True)   # a kill a moment earlier: the state not yet written
    leftover = out / f".best.{socket.gethostname()}-{dead_pid()}.tmp"   # a dead writer's half-written best/
    leftover.mkdir()
    code, output = finish(*train_args(tiny_checkpoint(FAMILY), questions, out, epochs=4))
    assert code == 2 and "--resume" in error_lines(output)[0]   # a plain re-run is still refused

    code, output = finish(*train_args(tiny_checkpoint(FAMILY), questions, out, epochs=4), "--resume")
    assert code == 0, output
    assert f"note: --resume: {cut} is incomplete (no trainer_state.json): removed" in output
    assert (out / "best" / "adapter_model.safetensors").is_file() and not leftover.exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    stats = json.loads((out / "train_stats.json").read_text())
    assert stats["finished"] and [e["epoch"] for e in stats["epochs"]] == [1, 2, 3, 4]


@pytest.fixture
def small_disk(tmp_path):
    """A 200 KiB tmpfs: room for the first checkpoint of the tiny run (about 90 KB), not for the second."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=False)


def test_a_full_disk_is_one_line_and_resume_finishes(tiny_checkpoint, questions, small_disk):
    out = small_disk / "run"
    args = train_args(tiny_checkpoint(FAMILY), questions, out, epochs=3)
    code, output = finish(*args)
    assert code == 1, output
    assert "Traceback" not in output
    (line,) = error_lines(output)
    assert line.startswith(f"error: {out}") and "No space left on device" in line and "--resume" in line

    subprocess.run(["mount", "-o", "remount,size=2m", str(small_disk)], check=True)   # space freed
    code, output = finish(*args, "--resume")
    assert code == 0, output
    assert (out / "best" / "adapter_model.safetensors").is_file()
    stats = json.loads((out / "train_stats.json").read_text())
    assert stats["finished"] and [e["epoch"] for e in stats["epochs"]] == [1, 2, 3]
