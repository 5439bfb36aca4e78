"""docs/slurm on a real Slurm: a single-node cluster (munged, slurmctld, slurmd) started here in a tmp
dir runs render-array.sbatch as an array of 3 shards writing into one folder, then merge.sbatch as a
dependent job; the result is byte-identical to one uninterrupted render. Likewise evaluate-array.sbatch
answers a question file as 3 shards of one run folder and score.sbatch merges and scores them: the same
predictions as one `scenes2real evaluate`, also when a task is missing and resubmitted alone (SHARDS=3).

Needs root and the Debian packages slurm-wlm and munge (skipped without them); installs nothing."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.question_sets import write_mixed_questions

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
SLURM_DOCS = ROOT / "docs" / "slurm"
PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel")
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
         "PREEMPTED"}
SHARDS = 3


def _find(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"   # a zombie nobody reaps is gone too


def _stop(pidfile: Path) -> None:
    """SIGTERM the daemon named by its pid file, SIGKILL it after 15 s."""
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _alive(pid):
            return


@dataclass
class Cluster:
    dir: Path
    env: dict
    bins: dict
    t0: float   # when the fixture began starting it

    def run(self, *args, env=None, timeout=60, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([self.bins.get(args[0], args[0]), *args[1:]], env=env or self.env, text=True,
                              capture_output=True, timeout=timeout, **kw)

    def wait(self, job_id: str, timeout: float = 300) -> dict[str, str]:
        """Poll until every task of the job has ended; its state per task (array index, or the job id)."""
        deadline = time.monotonic() + timeout
        while True:
            states = {}
            for line in self.run("scontrol", "-o", "show", "job", job_id).stdout.splitlines():
                fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
                states[fields.get("ArrayTaskId", fields.get("JobId"))] = fields.get("JobState")
            if states and set(states.values()) <= FINAL:
                return states
            assert time.monotonic() < deadline, f"job {job_id} still running after {timeout} s: {states}"
            time.sleep(0.5)

    def logs(self) -> str:
        return "".join(f"\n--- {p.name} (tail)\n" + "\n".join(p.read_text(errors="replace").splitlines()[-20:])
                       for p in sorted((self.dir / "log").glob("*.log")))


def _config(d: Path, node: str, cpus: int, socket_path: Path) -> str:
    return f"""\
ClusterName=s2rtest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={socket_path}
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/run/slurmctld.pid
SlurmdPidFile={d}/run/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
# no cgroups in a container: track processes by parentage, bind nothing
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
# CPUs are the consumable resource: array tasks of 1 CPU run side by side
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
# a job whose dependency can never be met (a failed array task) is cancelled, not left pending
DependencyParameters=kill_invalid_depend
MailProg=/bin/true
ReturnToService=2
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=test Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture
def slurm(tmp_path_factory):
    """A single-node Slurm in a tmp dir; every daemon is stopped afterwards, also when the test fails."""
    t0 = time.perf_counter()
    bins = {name: _find(name) for name in PROGRAMS}
    missing = [name for name, path in bins.items() if not path]
    if missing:
        pytest.skip(f"no {', '.join(missing)}: install the Debian packages slurm-wlm and munge")
    if os.geteuid() != 0:
        pytest.skip("starting slurmd and munged needs root")
    d = tmp_path_factory.mktemp("slurm")
    for sub in ("munge", "state", "spool", "log", "run"):
        (d / sub).mkdir(mode=0o700)
    sock_dir = d / "munge"
    if len(str(sock_dir)) > 80:   # a unix socket path has at most 107 bytes
        sock_dir = Path(tempfile.mkdtemp(prefix="s2r-munge-"))
    key = d / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    node = socket.gethostname().split(".")[0]
    probe = subprocess.run([bins["slurmd"], "-C"], capture_output=True, text=True, timeout=30).stdout
    cpus = int(m.group(1)) if (m := re.search(r"\bCPUs=(\d+)", probe)) else os.cpu_count() or 1
    conf = d / "slurm.conf"
    conf.write_text(_config(d, node, cpus, sock_dir / "munge.socket"))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    for var in [v for v in env if v.startswith(("SLURM_", "SBATCH_", "SQUEUE_", "SINFO_")) and v != "SLURM_CONF"]:
        del env[var]   # a test run inside a Slurm job must not leak that job's settings
    cluster = Cluster(d, env, bins, t0)
    pidfiles = [d / "run" / "slurmd.pid", d / "run" / "slurmctld.pid", d / "munge" / "munged.pid"]
    try:
        # --force: munged refuses a socket whose parent directories are not world-executable (pytest's
        # tmp root is 0700); all three daemons fork into the background and write their pid files
        started = [
            cluster.run("munged", "--force", f"--key-file={key}", f"--socket={sock_dir / 'munge.socket'}",
                        f"--pid-file={pidfiles[2]}", f"--log-file={d / 'log' / 'munged.log'}",
                        f"--seed-file={d / 'munge' / 'munged.seed'}"),
            cluster.run("slurmctld", "-c"),
            cluster.run("slurmd", "-N", node),
        ]
        for r in started:
            assert r.returncode == 0, f"{r.args[0]} failed to start: {r.stderr}{cluster.logs()}"
        deadline = time.monotonic() + 60
        state = ""
        while time.monotonic() < deadline:
            state = cluster.run("sinfo", "-h", "-N", "-o", "%N %t").stdout.strip()
            if state.split()[-1:] == ["idle"]:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"node not idle after 60 s (sinfo: {state!r}){cluster.logs()}")
        yield cluster
    finally:
        try:   # jobs still queued or running (a failed test): cancel them while slurmd can
            jobs = cluster.run("squeue", "-h", "-o", "%A", timeout=30).stdout.split() if pidfiles[1].exists() else []
            if jobs:
                cluster.run("scancel", *jobs, timeout=30)
                deadline = time.monotonic() + 30
                while cluster.run("squeue", "-h", timeout=30).stdout.strip() and time.monotonic() < deadline:
                    time.sleep(0.5)
        except (OSError, subprocess.SubprocessError):
            pass
        for pidfile in pidfiles:
            _stop(pidfile)
        if sock_dir != d / "munge":
            shutil.rmtree(sock_dir, ignore_errors=True)


def _job_env(cluster: Cluster, **extra: str) -> dict:
    """The environment of the commands and jobs: the code under test, run as SCENES2REAL."""
    return {**cluster.env, "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
            "SCENES2REAL": f"{sys.executable} -m scenes2real", **extra}


def _submit(cluster: Cluster, *args, env: dict, cwd: Path) -> str:
    """`sbatch --parsable ARGS`; the job id."""
    sub = cluster.run("sbatch", "--parsable", *map(str, args), env=env, cwd=cwd)
    assert sub.returncode == 0, sub.stderr
    return sub.stdout.strip().split(";")[0]


def _array_then_score(cluster: Cluster, tasks: str, logs: Path, model: Path, questions: Path, run: Path,
                      options: tuple, *extra: str, env: dict, cwd: Path) -> tuple[str, str, dict, dict, dict[str, str]]:
    """evaluate-array.sbatch as `--array=TASKS` and score.sbatch after it (afterok), both waited for: the two job
    ids, their task states and the job logs (`_job_logs`)."""
    array_id = _submit(cluster, f"--array={tasks}", "--cpus-per-task=1", *extra, f"--output={logs}/evaluate-%A_%a.out",
                       SLURM_DOCS / "evaluate-array.sbatch", model, questions, run, *options, env=env, cwd=cwd)
    score_id = _submit(cluster, f"--dependency=afterok:{array_id}", f"--output={logs}/score-%j.out",
                       SLURM_DOCS / "score.sbatch", run, questions, env=env, cwd=cwd)
    return array_id, score_id, cluster.wait(array_id), cluster.wait(score_id), _job_logs(logs)


def _job_logs(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text(errors="replace") for p in sorted(folder.glob("*.out"))}


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_render_array_matches_one_run(slurm, tmp_path):
    t0 = time.perf_counter()
    env = _job_env(slurm)
    one = subprocess.run([sys.executable, "-m", "scenes2real", "render", "--preset", "demo", "--out",
                          str(tmp_path / "one"), "--quiet"], env=env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=600)
    assert one.returncode == 0, one.stderr
    t_one = time.perf_counter() - t0

    logs, out = tmp_path / "logs", tmp_path / "array"
    logs.mkdir()
    sub = slurm.run("sbatch", "--parsable", f"--array=0-{SHARDS - 1}", "--cpus-per-task=1",
                    f"--output={logs}/render-%A_%a.out", str(SLURM_DOCS / "render-array.sbatch"), "demo",
                    str(out), env=env, cwd=tmp_path)
    assert sub.returncode == 0, sub.stderr
    array_id = sub.stdout.strip().split(";")[0]
    merge = slurm.run("sbatch", "--parsable", f"--dependency=afterok:{array_id}", f"--output={logs}/merge-%j.out",
                      str(SLURM_DOCS / "merge.sbatch"), str(out), env=env, cwd=tmp_path)
    assert merge.returncode == 0, merge.stderr
    merge_id = merge.stdout.strip().split(";")[0]
    # a failed array task cancels the merge (DependencyParameters=kill_invalid_depend), so both end
    array_states, merge_states = slurm.wait(array_id), slurm.wait(merge_id)
    job_logs = {p.name: p.read_text(errors="replace") for p in sorted(logs.glob("*.out"))}
    shown = "".join(f"\n--- {name}\n{text}" for name, text in job_logs.items())
    assert array_states == {str(k): "COMPLETED" for k in range(SHARDS)}, f"array: {array_states}{shown}"
    assert merge_states == {merge_id: "COMPLETED"}, f"merge: {merge_states}{shown}{slurm.logs()}"

    # each task rendered its shard and only it: the scenes with index % 3 == k, none done before
    from blender_scenes.config import load_preset
    from blender_scenes.plan import plan
    scenes = plan(load_preset("demo"))
    starts = {}
    for k in range(SHARDS):
        text = job_logs.get(f"render-{array_id}_{k}.out", "")
        assert f"shard {k}/{SHARDS} " in text, f"task {k}: {text!r}"
        m = re.search(r"rendered (\d+) scenes \((\d+) already done\)", text)
        mine = sum(1 for s in scenes if s.index % SHARDS == k)
        assert m and (int(m[1]), int(m[2])) == (mine, 0), f"task {k} should render {mine} scenes: {text!r}"
        starts[k] = re.search(r"started (\S+)", text)[1]

    want, got = _files(tmp_path / "one"), _files(out)
    assert sorted(got) == sorted(want), (f"only in the array's folder: {sorted(set(got) - set(want))}; "
                                         f"only in one run's: {sorted(set(want) - set(got))}")
    differ = [name for name in want if got[name] != want[name]]
    assert not differ, f"files that differ: {differ}"
    assert {n.split("/")[0] for n in want} >= {"images", "scenes", "annotations", "questions", "manifest.json"}

    print(f"\nslurm: {len(want)} files identical; one run {t_one:.1f} s; array tasks started at "
          f"{', '.join(starts[k] for k in range(SHARDS))}; starting Slurm {t0 - slurm.t0:.1f} s, "
          f"test {time.perf_counter() - t0:.1f} s, whole {time.perf_counter() - slurm.t0:.1f} s")


DESCRIPTIONS = ["red star", "blue circle", "green square", "yellow triangle", "dog", "car"]
N_QUESTIONS = 9


@pytest.fixture
def questions(tmp_path) -> Path:
    """A dataset folder with 6 small PNGs (different sizes and colours) and questions/test.jsonl: 9 questions."""
    return write_mixed_questions(tmp_path / "dataset", N_QUESTIONS, DESCRIPTIONS)


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]


def test_evaluate_array_matches_one_run(slurm, tmp_path, questions, tiny_checkpoint):
    model = tiny_checkpoint("qwen2_5_vl")
    t0 = time.perf_counter()
    env = _job_env(slurm, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    options = ("--batch-size", "2", "--max-new-tokens", "6")
    one = subprocess.run([sys.executable, "-m", "scenes2real", "evaluate", "--model", str(model), "--questions",
                          str(questions), "--out", str(tmp_path / "one"), *options], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr
    want = _rows(tmp_path / "one")
    ids = [json.loads(line)["id"] for line in questions.read_text().splitlines()]
    assert [r["id"] for r in want] == ids and len({r["raw"] for r in want}) > 1, "answers do not depend on the input"
    t_one = time.perf_counter() - t0

    logs, run = tmp_path / "logs", tmp_path / "array"
    logs.mkdir()
    array_id, score_id, array_states, score_states, job_logs = _array_then_score(
        slurm, f"0-{SHARDS - 1}", logs, model, questions, run, options, env=env, cwd=tmp_path)
    shown = "".join(f"\n--- {name}\n{text}" for name, text in job_logs.items())
    assert array_states == {str(k): "COMPLETED" for k in range(SHARDS)}, f"array: {array_states}{shown}"
    assert score_states == {score_id: "COMPLETED"}, f"score: {score_states}{shown}{slurm.logs()}"
    for k in range(SHARDS):
        text = job_logs.get(f"evaluate-{array_id}_{k}.out", "")
        assert f"shard {k}/{SHARDS} of " in text and f"shard {k}/{SHARDS} done in " in text, f"task {k}: {text!r}"

    # the merged run is one process's: same ids once each in question order, same raw answers, same scores
    assert _rows(run) == want
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "complete" and info["missing"] == 0 and info["errors"] == 0, info
    assert {name: part["answered_now"] for name, part in info["parts"].items()} == \
        {f"{k}-of-{SHARDS}": N_QUESTIONS // SHARDS for k in range(SHARDS)}
    metrics, metrics_one = (json.loads((r / "metrics.json").read_text()) for r in (run, tmp_path / "one"))
    assert metrics["n_predictions"] == N_QUESTIONS and metrics["tasks"] == metrics_one["tasks"]
    assert not (run / "shards").exists()
    t_array = time.perf_counter() - t0 - t_one

    # a task that never ran: score.sbatch fails on the incomplete run; task 1 resubmitted alone (SHARDS=3)
    # answers its questions, and scoring again completes the run
    logs, run = tmp_path / "logs-resubmit", tmp_path / "resubmit"
    logs.mkdir()
    first_id, score_id, first_states, score_states, job_logs = _array_then_score(
        slurm, "0,2", logs, model, questions, run, options, f"--export=ALL,SHARDS={SHARDS}", env=env,
        cwd=tmp_path)
    shown = "".join(f"\n--- {name}\n{text}" for name, text in job_logs.items())
    assert first_states == {"0": "COMPLETED", "2": "COMPLETED"}, f"array: {first_states}{shown}"
    assert score_states == {score_id: "FAILED"}, f"score of an incomplete run: {score_states}{shown}"
    missing = N_QUESTIONS // SHARDS
    assert f"run is incomplete ({missing} questions missing, 0 failed)" in job_logs[f"score-{score_id}.out"]
    info = json.loads((run / "run.json").read_text())
    assert (info["status"], info["missing"]) == ("incomplete", missing), info
    assert [r["id"] for r in _rows(run)] == [i for n, i in enumerate(ids) if n % SHARDS != 1]

    again_id, score_id, again_states, score_states, job_logs = _array_then_score(
        slurm, "1", logs, model, questions, run, options, f"--export=ALL,SHARDS={SHARDS}", env=env,
        cwd=tmp_path)
    shown = "".join(f"\n--- {name}\n{text}" for name, text in job_logs.items())
    assert again_states == {"1": "COMPLETED"}, f"resubmitted task: {again_states}{shown}"
    assert score_states == {score_id: "COMPLETED"}, f"score: {score_states}{shown}"
    assert f"shard 1/{SHARDS} done in " in job_logs[f"evaluate-{again_id}_1.out"]
    assert _rows(run) == want
    assert json.loads((run / "run.json").read_text())["status"] == "complete"

    print(f"\nslurm: {N_QUESTIONS} predictions equal one run's; one run {t_one:.1f} s, array and score "
          f"{t_array:.1f} s; starting Slurm and the tiny checkpoint {t0 - slurm.t0:.1f} s, test {time.perf_counter() - t0:.1f} s, "
          f"whole {time.perf_counter() - slurm.t0:.1f} s")
