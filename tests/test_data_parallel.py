"""Data-parallel `evaluate` and `probe` through real processes: torchrun ranks (gloo, on the CPU) answer like
one process, a killed multi-rank run resumes with any number of processes, job-array shards (`--shard K/N`)
merged by `score` equal one process, and the shards of one array share their run folder's lock while any other
writer is refused."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.clirun import invoke, run_in_process
from tests.processes import ROOT, cli, ok
from tests.question_sets import write_mixed_questions
from tests.test_locks import holding, refused

DESCRIPTIONS = ["red star", "blue circle", "green square", "yellow triangle", "dog", "car", "purple cube"]
N_QUESTIONS = 120


@pytest.fixture(scope="module")
def questions(tmp_path_factory) -> Path:
    """N_QUESTIONS questions over 24 small PNGs, tasks area9 / horizontal / vertical (enough per answer for a
    horizontal probe with 2 folds)."""
    return write_mixed_questions(tmp_path_factory.mktemp("many"), N_QUESTIONS, DESCRIPTIONS, n_images=24)


def run_cli(*args) -> str:
    """`scenes2real ...` in this process; its output, asserting exit status 0."""
    return run_in_process(*args).output


def torchrun(n: int, *args) -> subprocess.Popen:
    """`torchrun --nproc_per_node n -m scenes2real ...` in its own process group."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(n),
                             "-m", "scenes2real", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, start_new_session=True)


def finished(proc: subprocess.Popen) -> str:
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out
    return out


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]


def ids(questions: Path) -> list[str]:
    return [json.loads(line)["id"] for line in questions.read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_checkpoint, questions) -> tuple[Path, Path]:
    """(model, run folder) of one process answering every question."""
    model = tiny_checkpoint("qwen2_5_vl")
    run = tmp_path_factory.mktemp("one") / "run"
    # in its own process with one thread, as torchrun gives each rank (tiny matrices: more threads only wait)
    ok("evaluate", "--model", model, "--questions", questions, "--out", run, "--batch-size", 2,
       env={"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
    assert [r["id"] for r in rows(run)] == ids(questions)
    assert len({r["raw"] for r in rows(run)}) > 1, "answers do not depend on the input"
    return model, run


def test_torchrun_ranks_answer_like_one_process(tmp_path, reference, questions):
    model, one = reference
    run = tmp_path / "two"
    finished(torchrun(2, "evaluate", "--model", model, "--questions", questions, "--out", run, "--batch-size", 2))
    assert rows(run) == rows(one)   # same ids once each, in question order, same raw answers
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "complete" and info["answered_now"] == N_QUESTIONS and info["missing"] == 0
    assert {name: part["answered_now"] for name, part in info["parts"].items()} == {"0-of-2": 60, "1-of-2": 60}
    metrics, metrics_one = (json.loads((r / "metrics.json").read_text()) for r in (run, one))
    assert metrics["tasks"] == metrics_one["tasks"]
    assert not (run / "shards").exists() and not (tmp_path / ".two.lock").exists()


def test_accelerate_launch_ranks_answer_like_one_process(tmp_path, reference, questions):
    """`accelerate launch --multi_gpu` starts its processes through torch's launcher (RANK, WORLD_SIZE); with
    --device cpu it runs here without a GPU. (Its `--cpu` mode starts one process.)"""
    model, one = reference
    run = tmp_path / "accelerate"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                    "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                    "-m", "scenes2real", "evaluate", "--model", str(model), "--questions", str(questions),
                    "--out", str(run), "--batch-size", "2", "--limit", "20", "--device", "cpu"],
                   check=True, env=env, capture_output=True, timeout=600)
    assert rows(run) == rows(one)[:20]
    assert sorted(json.loads((run / "run.json").read_text())["parts"]) == ["0-of-2", "1-of-2"]


def kill_when_answered(proc: subprocess.Popen, run: Path, at_least: int, timeout: float = 300) -> int:
    """SIGKILL a torchrun job (the launcher and its ranks) once its shard files hold `at_least` rows; how many they hold."""
    def count() -> int:
        return sum(len(p.read_text().splitlines()) for p in run.glob("shards/*.jsonl"))

    deadline = time.time() + timeout
    while count() < at_least:
        assert proc.poll() is None, proc.communicate()[0]
        assert time.time() < deadline, "the ranks never answered"
        time.sleep(0.005)
    # torchrun starts each rank in a session of its own: the launcher and every rank go at once, as when a
    # scheduler kills the job's cgroup
    import psutil

    family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    for member in family:
        member.send_signal(signal.SIGKILL)
    psutil.wait_procs(family, timeout=30)
    proc.wait()
    return count()


def test_a_killed_two_rank_run_resumes_with_one_process_and_with_three_ranks(tmp_path, reference, questions):
    model, one = reference
    run = tmp_path / "killed"
    args = ("evaluate", "--model", model, "--questions", questions, "--out", run, "--batch-size", 2)
    answered = kill_when_answered(torchrun(2, *args, "--max-new-tokens", 16), run, at_least=12)
    assert answered < N_QUESTIONS, "the run ended before the kill; nothing to resume"
    assert json.loads((run / "shards" / "0-of-2.run.json").read_text())["status"] == "running"   # SIGKILL: no word
    again = tmp_path / "again"
    subprocess.run(["cp", "-a", str(run), str(again)], check=True)

    run_cli(*args)   # one process takes over the two ranks' rows
    assert rows(run) == rows(one)
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "complete" and info["answered_now"] == N_QUESTIONS - answered

    finished(torchrun(3, *args[:6], again, *args[7:]))   # three ranks split what two left
    assert rows(again) == rows(one)
    info = json.loads((again / "run.json").read_text())
    # every part that wrote rows is listed: the killed ones say so
    assert info["status"] == "complete" and sorted(info["parts"]) == ["0-of-2", "0-of-3", "1-of-2", "1-of-3", "2-of-3"]
    assert info["parts"]["0-of-2"]["status"] == "killed" and info["parts"]["2-of-3"]["status"] == "complete"
    assert info["answered_now"] == N_QUESTIONS - answered


def test_torchrun_probe_equals_one_process(tmp_path, reference, questions):
    model, _ = reference
    common = ("probe", "--model", model, "--questions", questions, "--task", "horizontal", "--folds", 2,
              "--batch-size", 1)
    # one thread in each process, as torchrun gives each rank: a matmul's sums in another order (more threads)
    # move the hidden states by float rounding, and the probe's fits with them
    ok(*common, "--out", tmp_path / "one", env={"OMP_NUM_THREADS": "1"})
    finished(torchrun(2, *common, "--out", tmp_path / "two"))
    one, two = (json.loads((tmp_path / name / "probe.json").read_text()) for name in ("one", "two"))
    assert one["n"] == N_QUESTIONS // 3 and one == two
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["hidden_states.npz", "probe.json", "probe.png"]


def test_job_array_shards_merged_by_score_equal_one_process(tmp_path, reference, questions):
    model, one = reference
    run = tmp_path / "array"
    limit = 30   # the first 30 questions: enough for 3 shards, a third of the time
    args = ("evaluate", "--model", model, "--questions", questions, "--out", run, "--batch-size", 2, "--limit", limit)
    for k in range(3):
        assert f"shard {k}/3 done" in run_cli(*args, "--shard", f"{k}/3")
    assert not (run / "predictions.jsonl").exists() and not (run / "metrics.json").exists()
    shard_rows = [json.loads(line) for k in range(3) for line in (run / "shards" / f"{k}-of-3.jsonl").open()]
    assert sorted(r["id"] for r in shard_rows) == ids(questions)[:limit]
    # shard 1 was killed while writing its last row: that row is cut, and the task is run again
    shard = run / "shards" / "1-of-3.jsonl"
    shard.write_text(shard.read_text()[:-25])
    assert "shard 1/3 done" in run_cli(*args, "--shard", "1/3")
    run_cli("score", run, "--questions", questions)
    assert rows(run) == rows(one)[:limit]
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "complete" and info["missing"] == 0 and info["answered_now"] == 10 + 1 + 10   # shard 1's second run answered one
    assert sorted(info["parts"]) == ["0-of-3", "1-of-3", "2-of-3"] and not (run / "shards").exists()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["correct"] == sum(r["correct"] for r in rows(one)[:limit]) and metrics["errors"] == 0


def test_a_shard_resumed_with_other_settings_is_refused(tmp_path, reference, questions):
    model, _ = reference
    run = tmp_path / "array"
    run_cli("evaluate", "--model", model, "--questions", questions, "--out", run, "--shard", "0/2", "--limit", 6)
    result = invoke("evaluate", "--model", model, "--questions", questions, "--out", run, "--shard", "1/2",
                    "--limit", 6, "--max-new-tokens", 3)
    assert result.exit_code == 2 and "0-of-2.run.json: field 'max_new_tokens'" in result.output, result.output


def test_shards_of_one_array_share_the_run_folder_and_other_writers_wait(tmp_path, reference, questions):
    model, _ = reference
    run = tmp_path / "array"
    args = ("evaluate", "--model", model, "--questions", questions, "--out", run, "--batch-size", 2, "--limit", 12)
    first = cli(*args, "--shard", "0/2")
    with holding(first, run):
        assert "in use by another writer" in refused(*args)                          # a plain run
        assert "in use by another writer" in refused(*args, "--shard", "1/3")       # another array
        assert "in use by another writer" in refused("score", run, "--questions", questions)
        ok(*args, "--shard", "1/2")                                                 # the same array's task
    assert first.wait(300) == 0, first.communicate()[0]
    ok("score", run, "--questions", questions)
    assert [r["id"] for r in rows(run)] == ids(questions)[:12]
