"""Evaluation throughput by backend and by process count: questions/s of `scenes2real evaluate` on the same
questions with the same checkpoint on this CPU, each configuration in a fresh process (no shared caches, threads
or allocator), in three phases:

1. **transformers backend** (one process, `--threads` torch threads: OMP_NUM_THREADS set to it) at `--batch-size
   1` and `--batch-size 8`, and **data-parallel**: `torchrun --nproc_per_node 2` at batch size 8 (OMP_NUM_THREADS
   left unset, so torchrun sets 1 per rank: the same total thread budget as the one process). The one-process
   batch-8 run is both batch 1's partner and the data-parallel run's: one rotation (b1, b8, 2 ranks; then 2
   ranks, b8, b1; ...) keeps both comparisons adjacent in time at the cost of five runs a round, not six;
2. **openai backend** against `transformers serve` of the same checkpoint (started once with `--threads` torch
   threads, its default settings otherwise: no continuous batching; ready when GET /v1/models answers, warmed with
   one request, stopped at the end), `--concurrency 1` vs `--concurrency 4`;
3. **client overhead of the openai backend**: the same CLI against a trivial local server (http.server's
   ThreadingHTTPServer in a process of its own: GET /v1/models and POST /v1/chat/completions answered with a
   fixed chat.completion at once), over `--overhead-questions` questions (the rendered images reused under new
   ids), at concurrency 1 and 4: wall / N of the answering loop is the whole client-side cost per question
   (reading the image, base64, JSON, the loopback HTTP round trip, parsing, writing the row), plus the trivial
   server's own small share.

The configurations of a phase alternate over `--repeat` rounds (A B C, C B A, ...), so load drift hits both sides;
the summary gives each configuration's runs and medians, and the ratios (of the medians, and for the paired
phases the median of the rounds' ratios). Every process runs the real CLI (`scenes2real evaluate`, in-process
through its click entry point, in this script's `--worker` mode; under torchrun each rank runs it) with the
runner's answering loop (`evaluation.runner._answer`) timed from outside: **questions/s = questions / the
answering loop's wall** (model loaded, checks done; under torchrun from the first rank's start to the last
rank's end). Each run also records the process's wall (python start, imports, model load, checks, scoring)
and questions per process second, CPU seconds (the process tree, and the server's: its process and the model
process it spawns, during the run) and questions per CPU second of the answering loop (plus the server's), each
process's own peak RSS (VmHWM), torch threads and OMP_NUM_THREADS as each process saw them, the 1-minute load average (before, during: mean and
max of 1 s samples, after), and the CPU the rest of the machine used meanwhile (/proc/stat busy time minus
ours, in cores). Raw answers of every run are compared, id by id, with the first batch-1 run's.

The model: the SmolVLM-256M-size checkpoint of `bench/train_vs_trl.py` (published widths and depths, random
weights, one 512 px tile per image); the questions: the first `--questions` scenes of the clevr preset's test
split (Cycles renders, 336 px, ~170 KB PNGs, one area9 question each). `--quick`: a tiny SmolVLM checkpoint
(`vlm_train.tiny.write_tiny_model`), 4 questions, 40 overhead questions, one round, a smoke test (~1.5 min).
The default question count (16) is what fits ~25 minutes on the shared 2-core machine: with other jobs holding
about one core, batch 1 took ~10 s a question.

    python bench/eval.py                 # 16 questions, 2 rounds (~25 min on 2 shared cores)
    python bench/eval.py --quick
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.train_vs_trl import ENV, build_smolvlm_256m  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
FIXED_ANSWER = "top left"   # what the trivial server answers (an area9 label, so scoring parses it)


# --- data ----------------------------------------------------------------------------------------------------

def render_preset(out: Path, preset: str, split: str, limit: int) -> Path:
    """The first `limit` scenes of a preset's `split` (rendered once, reused); returns the question file."""
    questions = out / "questions" / f"{split}.jsonl"
    if not questions.is_file() or len(questions.read_text().splitlines()) != limit:
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "scenes2real", "render", "--preset", preset, "--split", split,
                        "--limit", str(limit), "--out", str(out), "--quiet"], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL, env={**os.environ, **ENV})
    return questions


def repeated_questions(questions: Path, n: int) -> Path:
    """`n` questions cycling over the file's records under new ids (the same image files, read afresh each
    time), beside it so that image paths resolve alike."""
    records = [json.loads(line) for line in questions.read_text().splitlines()]
    rows = [{**records[i % len(records)], "id": f"{records[i % len(records)]['id']}~{i // len(records)}"}
            for i in range(n)]
    out = questions.with_name(f"{questions.stem}-x{n}.jsonl")
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def image_bytes(questions: Path) -> dict:
    from blender_scenes.questions import read_questions, resolve_image

    sizes = [resolve_image(r, questions).stat().st_size for r in read_questions(questions)]
    return {"n": len(sizes), "median_bytes": int(statistics.median(sizes)), "min_bytes": min(sizes),
            "max_bytes": max(sizes)}


# --- the worker: `scenes2real evaluate` in this process (one process, or one torchrun rank) ----------------

def worker(cfg: dict, result_dir: Path) -> None:
    entered = time.time()
    from evaluation import runner

    loop: dict = {}
    answer = runner._answer

    def timed_answer(backend, todo, *args, **kwargs):   # the answering loop's span; nothing else changes
        loop.update(start=time.time(), cpu_start=time.process_time(), questions=len(todo))
        try:
            return answer(backend, todo, *args, **kwargs)
        finally:
            loop.update(end=time.time(), cpu=time.process_time() - loop["cpu_start"])

    runner._answer = timed_answer
    from scenes2real.cli import cli

    args = ["evaluate", "--model", cfg["model"], "--questions", cfg["questions"], "--out", cfg["out"],
            "--max-new-tokens", str(cfg["max_new_tokens"]), *cfg["args"]]
    try:
        cli.main(args, prog_name="scenes2real")
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise
    ended = time.time()
    rank = int(os.environ.get("RANK", "0"))
    figures = {"rank": rank, "world_size": int(os.environ.get("WORLD_SIZE", "1")),
               "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
               "torch_threads": sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None,
               "call_s": round(ended - entered, 3), "peak_rss_mb": peak_rss_mb(os.getpid()), **loop}
    if rank == 0:   # the process that merged: every answer, in question order
        rows = [json.loads(line) for line in (Path(cfg["out"]) / "predictions.jsonl").read_text().splitlines()]
        figures["answers"] = {row["id"]: row["raw"] for row in rows}
        figures["errors"] = sum(row.get("error") is not None for row in rows)
    (result_dir / f"rank-{rank}.json").write_text(json.dumps(figures))


# --- the trivial server (phase 4) ----------------------------------------------------------------------------

def trivial_server(port: int, model: str) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    models = json.dumps({"object": "list", "data": [{"id": model, "object": "model", "created": 0,
                                                     "owned_by": "bench"}]}).encode()
    completion = json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": FIXED_ANSWER}, "finish_reason": "stop",
                     "logprobs": None}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"        # keep-alive, as the client's connection pool expects
        disable_nagle_algorithm = True       # as uvicorn and other real servers: no 40 ms delayed-ACK stalls

        def reply(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path.rstrip("/").endswith("/models"):
                self.reply(models)
            else:
                self.send_error(404)

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path.rstrip("/").endswith("/chat/completions"):
                self.reply(completion)
            else:
                self.send_error(404)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()


# --- measuring a process -------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores; /proc/stat: all but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK   # utime, stime (fields 14, 15)


def process_tree(pid: int) -> list[int]:
    """`pid` and its living descendants (`transformers serve` runs its model in a spawned child process)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo += children.get(tree[-1], [])
    return tree


def tree_cpu_s(pids: tuple[int, ...]) -> dict[int, float]:
    """CPU seconds of each living process of these processes' trees."""
    out = {}
    for pid in (p for root in pids for p in process_tree(root)):
        try:
            out[pid] = process_cpu_s(pid)
        except OSError:   # ended meanwhile
            pass
    return out


class LoadSampler(threading.Thread):
    """The 1-minute load average every second while a run goes."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(1.0):
            self.samples.append(os.getloadavg()[0])


def run_process(name: str, cmd: list[str], env: dict, work: Path, side_pids: tuple[int, ...] = ()) -> dict:
    """Run `cmd` to its end; its wall, CPU (process tree), the side processes' CPU meanwhile (a server and its
    descendants), the load average and the rest of the machine's CPU use."""
    log_path = work / f"log-{name}.txt"
    load_before = os.getloadavg()[0]
    busy_before = machine_busy_s()
    side_before = tree_cpu_s(side_pids)
    sampler = LoadSampler()
    sampler.start()
    started = time.perf_counter()
    with open(log_path, "w") as log:
        child = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _, status, usage = os.wait4(child.pid, 0)
        except BaseException:   # the bench stopped (Ctrl-C, SIGTERM): its child goes too
            stop(child)
            raise
        child.returncode = os.waitstatus_to_exitcode(status)   # reaped here, for the rusage
    wall = time.perf_counter() - started
    sampler.stop.set()
    sampler.join()
    side = sum(cpu - side_before.get(pid, 0.0) for pid, cpu in tree_cpu_s(side_pids).items())
    busy = machine_busy_s() - busy_before
    if child.returncode != 0:
        raise SystemExit(f"{name} failed (exit {child.returncode}); see {log_path}")
    # (wait4's ru_maxrss is not used: Linux counts the forking parent's resident set in the child's)
    cpu = usage.ru_utime + usage.ru_stime
    samples = sampler.samples or [os.getloadavg()[0]]
    return {"process_wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "server_cpu_s": round(side, 3),
            "load_1min": {"before": round(load_before, 2), "during_mean": round(statistics.mean(samples), 2),
                          "during_max": round(max(samples), 2), "after": round(os.getloadavg()[0], 2)},
            "others_cores": round(max(busy - cpu - side, 0.0) / wall, 2)}


def child_env(threads: int | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env.update(ENV, PYTHONPATH=str(ROOT))
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def evaluate_run(name: str, cfg: dict, work: Path, *, ranks: int = 1, threads: int | None = None,
                 side_pids: tuple[int, ...] = ()) -> dict:
    """One `evaluate` in fresh processes (one, or `ranks` torchrun ranks): its figures and raw answers."""
    result_dir = work / f"result-{name}"
    shutil.rmtree(result_dir, ignore_errors=True)
    result_dir.mkdir(parents=True)
    shutil.rmtree(cfg["out"], ignore_errors=True)
    script = [str(Path(__file__).resolve()), "--worker", json.dumps(cfg), "--result", str(result_dir)]
    if ranks > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks),
               "--master_port", str(free_port()), *script]
    else:
        cmd = [sys.executable, *script]
    proc = run_process(name, cmd, child_env(threads), work, side_pids)
    parts = sorted((json.loads(p.read_text()) for p in result_dir.glob("rank-*.json")), key=lambda r: r["rank"])
    if len(parts) != ranks:
        raise SystemExit(f"{name}: {len(parts)} of {ranks} processes reported; see {work}/log-{name}.txt")
    answers = parts[0].pop("answers")
    n = len(answers)
    loop = max(p["end"] for p in parts) - min(p["start"] for p in parts)
    loop_cpu = sum(p["cpu"] for p in parts)
    return {"questions": n, "questions_per_s": round(n / loop, 4), "loop_s": round(loop, 2),
            "loop_cpu_s": round(loop_cpu, 2),
            # over the answering loops' CPU, plus a server's over the client's whole process
            "questions_per_cpu_s": round(n / (loop_cpu + proc["server_cpu_s"]), 4),
            "process_questions_per_s": round(n / proc["process_wall_s"], 4), **proc,
            "peak_rss_mb": max(p["peak_rss_mb"] for p in parts), "errors": parts[0]["errors"],
            "processes": [{k: p[k] for k in ("rank", "questions", "OMP_NUM_THREADS", "torch_threads", "call_s",
                                             "peak_rss_mb")}
                          | {"loop_s": round(p["end"] - p["start"], 2)} for p in parts],
            "answers": answers}


# --- the servers ---------------------------------------------------------------------------------------------

def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 600.0) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"the server stopped (exit {proc.returncode}); see {log}")
        try:
            with urllib.request.urlopen(url + "/models", timeout=5) as response:
                json.loads(response.read())
                return time.perf_counter() - started
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the server did not answer GET {url}/models in {timeout:.0f} s; see {log}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tree_peak_rss_mb(pid: int) -> dict[str, float | None]:
    return {str(p): peak_rss_mb(p) for p in process_tree(pid)}


def peak_rss_mb(pid: int) -> float | None:
    """The process's own peak resident set (VmHWM: since its exec)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def warm_request(url: str, model: str, questions: Path, max_new_tokens: int) -> dict:
    """One chat request as the backend builds it (the first question), timed."""
    from blender_scenes.prompts import record_prompt
    from blender_scenes.questions import read_questions, resolve_image
    from evaluation.backends import Question
    from evaluation.backends.openai_backend import messages

    record = read_questions(questions)[0]
    body = {"model": model, "messages": messages(Question(record, resolve_image(record, questions),
                                                          record_prompt(record))),
            "temperature": 0, "max_tokens": max_new_tokens}
    request = urllib.request.Request(url + "/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:
        reply = json.loads(response.read())
    return {"seconds": round(time.perf_counter() - started, 2),
            "answer": reply["choices"][0]["message"]["content"]}


def client_components(questions: Path, rounds: int = 5) -> dict:
    """Milliseconds per question of the request body's own parts, in this process: the data URL (the image's
    header read by PIL, the file read, base64) and that plus the messages' JSON encoding."""
    from blender_scenes.prompts import record_prompt
    from blender_scenes.questions import read_questions, resolve_image
    from evaluation.backends import Question
    from evaluation.backends.openai_backend import data_url, messages

    todo = [Question(r, resolve_image(r, questions), record_prompt(r)) for r in read_questions(questions)]
    out = {}
    for name, step in (("data_url", lambda q: data_url(q.image)),
                       ("data_url_and_json", lambda q: json.dumps(messages(q)))):
        per = []
        for _ in range(rounds):
            started = time.perf_counter()
            for q in todo:
                step(q)
            per.append(1000 * (time.perf_counter() - started) / len(todo))
        out[f"{name}_ms"] = round(min(per), 3)
    return {**out, "note": f"best of {rounds} passes over {len(todo)} images, in the bench process"}


# --- summaries -----------------------------------------------------------------------------------------------

SHOWN = ("questions_per_s", "questions_per_cpu_s", "loop_s", "process_wall_s", "process_questions_per_s", "cpu_s", "loop_cpu_s",
         "server_cpu_s", "peak_rss_mb", "others_cores")


def median_of(runs: list[dict], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 4)


def configuration(runs: list[dict], reference: dict) -> dict:
    """Runs (answers replaced by their agreement with the reference), medians, answers-equal counts."""
    shown = []
    for run in runs:
        answers = run["answers"]
        equal = sum(answers.get(k) == v for k, v in reference.items())
        differing = [k for k, v in reference.items() if answers.get(k) != v]
        shown.append({**{k: v for k, v in run.items() if k != "answers"},
                      "answers_equal_to_reference": equal,
                      "differing_examples": [{"id": k, "reference": reference[k], "this": answers.get(k)}
                                             for k in differing[:3]]})
    return {"median": {k: median_of(runs, k) for k in SHOWN},
            "answers_equal_to_reference": [r["answers_equal_to_reference"] for r in shown],
            "of": len(reference), "runs": shown}


def ratio(a: dict, b: dict, rounds: list[tuple[dict, dict]] | None = None) -> dict:
    out = {"of_medians": round(a["median"]["questions_per_s"] / b["median"]["questions_per_s"], 3)}
    if rounds:
        per = [x["questions_per_s"] / y["questions_per_s"] for x, y in rounds]
        out.update(per_round=[round(r, 3) for r in per], median_of_rounds=round(statistics.median(per), 3))
    return out


# --- the bench -----------------------------------------------------------------------------------------------

def alternate(names: tuple[str, ...], repeat: int, run) -> dict[str, list[dict]]:
    """`repeat` rounds of the configurations, the order reversed every other round; runs by name, in round
    order."""
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for r in range(repeat):
        for name in (names if r % 2 == 0 else names[::-1]):
            result = run(name, r)
            result["round"] = r
            runs[name].append(result)
            shown = {k: result[k] for k in ("questions_per_s", "loop_s", "process_wall_s", "load_1min",
                                            "others_cores") if k in result}
            print(json.dumps({"config": name, "round": r, **shown}), file=sys.stderr, flush=True)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny checkpoint, 4 questions, one round")
    parser.add_argument("--work", type=Path, default=None, help="working folder [runs/eval or runs/eval-quick]")
    parser.add_argument("--model", type=Path, default=None,
                        help="the bench model's folder, built there when missing [runs/train-vs-trl/model]")
    parser.add_argument("--questions", type=int, default=None, help="clevr test scenes [16; quick: 4]")
    parser.add_argument("--overhead-questions", type=int, default=None, help="phase 4 questions [256; quick: 40]")
    parser.add_argument("--repeat", type=int, default=None, help="rounds of each phase [2; quick: 1]")
    parser.add_argument("--overhead-repeat", type=int, default=None, help="rounds of phase 4 [3; quick: 1]")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads (OMP_NUM_THREADS) of the one-process runs and of the server")
    parser.add_argument("--result", type=Path, default=None,
                        help="where the JSON goes [bench/results/eval.json; quick: WORK/eval.json]")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--trivial-server", nargs=2, metavar=("PORT", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        worker(json.loads(args.worker), args.result)
        return
    if args.trivial_server:
        trivial_server(int(args.trivial_server[0]), args.trivial_server[1])
        return

    from bench.provenance import provenance

    quick = args.quick
    work = args.work or ROOT / "runs" / ("eval-quick" if quick else "eval")
    n_questions = args.questions or (4 if quick else 16)
    n_overhead = args.overhead_questions or (40 if quick else 256)
    repeat = args.repeat or (1 if quick else 2)
    overhead_repeat = args.overhead_repeat or (1 if quick else 3)
    result_path = args.result or (work / "eval.json" if quick else ROOT / "bench" / "results" / "eval.json")
    os.environ.update(ENV)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # so that the children and the servers stop too
    started = time.perf_counter()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    work.mkdir(parents=True, exist_ok=True)

    questions = render_preset(work / "data", "clevr", "test", n_questions)
    if quick:
        from vlm_train.tiny import write_tiny_model

        model = (args.model or work / "model").resolve()
        if not (model / "config.json").is_file():
            write_tiny_model("smolvlm", model, replace=True)
        model_info = {"architecture": "tiny smolvlm (vlm_train.tiny.write_tiny_model)", "init": "random",
                      "seed": 0}
    else:
        model = (args.model or ROOT / "runs" / "train-vs-trl" / "model").resolve()
        model_info = build_smolvlm_256m(model)
    model_info = {**model_info, "folder": str(model),
                  "weights_bytes": sum(p.stat().st_size for p in model.glob("*.safetensors"))}
    common = dict(model=str(model), questions=str(questions), max_new_tokens=args.max_new_tokens)

    def local(name: str, batch_size: int, ranks: int = 1):
        def run(label: str, r: int) -> dict:
            cfg = {**common, "out": str(work / f"run-{label}"), "args": ["--batch-size", str(batch_size)]}
            return evaluate_run(label, cfg, work, ranks=ranks, threads=None if ranks > 1 else args.threads)
        return run

    # 1. the transformers backend: batch 1, batch 8, and batch 8 as two torchrun ranks
    batch = {"transformers_batch1": (1, 1), "transformers_batch8": (8, 1), "torchrun_2_ranks_batch8": (8, 2)}
    phase1 = alternate(tuple(batch), repeat, lambda name, r: local(name, *batch[name])(name, r))
    reference = phase1["transformers_batch1"][0]["answers"]

    # 2. the openai backend against `transformers serve` of the same checkpoint
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    serve_cmd = [str(Path(sys.executable).parent / "transformers"), "serve", str(model), "--port", str(port),
                 "--host", "127.0.0.1", "--device", "cpu"]
    serve_log = work / "log-transformers-serve.txt"
    serve_started = time.perf_counter()
    with open(serve_log, "w") as log:
        server = subprocess.Popen(serve_cmd, cwd=ROOT, env=child_env(args.threads), stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        ready_s = wait_ready(url, server, serve_log)
        with urllib.request.urlopen(url + "/models", timeout=5) as response:
            served = json.loads(response.read())
        warm = warm_request(url, str(model), questions, args.max_new_tokens)
        print(json.dumps({"server_ready_s": round(ready_s, 1), "warm_request": warm}), file=sys.stderr, flush=True)

        def remote(name: str, r: int) -> dict:
            conc = name.rsplit("concurrency", 1)[1]
            cfg = {**common, "out": str(work / f"run-{name}"),
                   "args": ["--backend", "openai", "--base-url", url, "--concurrency", conc]}
            return evaluate_run(name, cfg, work, side_pids=(server.pid,))

        phase2 = alternate(("serve_concurrency1", "serve_concurrency4"), repeat, remote)
        server_rss = tree_peak_rss_mb(server.pid)
    finally:
        stop(server)
    server_info = {"command": " ".join(["transformers", *serve_cmd[1:]]), "OMP_NUM_THREADS": str(args.threads),
                   "settings": "transformers serve defaults otherwise: no continuous batching (its GenerateRunner "
                               "answers one request at a time, in a model process it spawns), dtype auto (fp32), no "
                               "compile, one API server process",
                   "ready_after_s": round(ready_s, 1), "served": served, "warm_request": warm,
                   "peak_rss_mb_by_process": server_rss, "log": str(serve_log),
                   "up_s": round(time.perf_counter() - serve_started, 1)}

    # 3. the client's own cost per question: a trivial server that answers at once
    many = repeated_questions(questions, n_overhead)
    tport = free_port()
    turl = f"http://127.0.0.1:{tport}/v1"
    tlog = work / "log-trivial-server.txt"
    with open(tlog, "w") as log:
        trivial = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--trivial-server", str(tport),
                                    "trivial"], cwd=ROOT, env=child_env(1), stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_ready(turl, trivial, tlog, timeout=60)

        def client(name: str, r: int) -> dict:
            conc = name.rsplit("concurrency", 1)[1]
            cfg = {**common, "model": "trivial", "questions": str(many), "out": str(work / f"run-{name}"),
                   "args": ["--backend", "openai", "--base-url", turl, "--concurrency", conc]}
            return evaluate_run(name, cfg, work, side_pids=(trivial.pid,))

        phase3 = alternate(("trivial_concurrency1", "trivial_concurrency4"), overhead_repeat, client)
    finally:
        stop(trivial)

    configs = {name: configuration(runs, reference)
               for phase in (phase1, phase2) for name, runs in phase.items()}

    def rounds(phase: dict, a: str, b_: str) -> list[tuple[dict, dict]]:
        return list(zip(phase[a], phase[b_]))

    ratios = {
        "batch8_over_batch1": ratio(configs["transformers_batch8"], configs["transformers_batch1"],
                                    rounds(phase1, "transformers_batch8", "transformers_batch1")),
        "serve_concurrency4_over_concurrency1": ratio(configs["serve_concurrency4"], configs["serve_concurrency1"],
                                                      rounds(phase2, "serve_concurrency4", "serve_concurrency1")),
        "two_processes_over_one": ratio(configs["torchrun_2_ranks_batch8"], configs["transformers_batch8"],
                                        rounds(phase1, "torchrun_2_ranks_batch8", "transformers_batch8")),
        "serve_concurrency1_over_transformers_batch1": ratio(configs["serve_concurrency1"],
                                                             configs["transformers_batch1"]),
    }

    overhead = {}
    for name, runs in phase3.items():
        n = runs[0]["questions"]
        ms = [1000 * r["loop_s"] / n for r in runs]
        overhead[name] = {
            "questions": n, "ms_per_question": round(statistics.median(ms), 3),
            "ms_per_question_runs": [round(x, 3) for x in ms],
            "client_loop_cpu_ms_per_question": round(statistics.median(1000 * r["loop_cpu_s"] / n for r in runs), 3),
            "server_cpu_ms_per_question": round(statistics.median(1000 * r["server_cpu_s"] / n for r in runs), 3),
            "process_ms_per_question": round(statistics.median(1000 * r["process_wall_s"] / n for r in runs), 3),
            "answers_fixed": [sum(a == FIXED_ANSWER for a in r["answers"].values()) for r in runs],
            "runs": [{k: v for k, v in r.items() if k != "answers"} for r in runs]}
    c1 = overhead["trivial_concurrency1"]["ms_per_question"]
    overhead["components"] = client_components(questions)

    all_runs = [r for phase in (phase1, phase2, phase3) for runs in phase.values() for r in runs]
    during = [r["load_1min"]["during_mean"] for r in all_runs]
    result = {
        "goals": {
            "two_processes_over_one": ">= 1.6 on 2 cores",
            "client_overhead_ms_per_question": "< 5 (concurrency 1, trivial server)"},
        "met": {"two_processes_over_one": ratios["two_processes_over_one"]["of_medians"] >= 1.6,
                "client_overhead_ms_per_question": c1 < 5},
        "headline": {
            **{f"{name}_questions_per_s": c["median"]["questions_per_s"] for name, c in configs.items()},
            **{name: r["of_medians"] for name, r in ratios.items()},
            "client_overhead_ms_per_question_concurrency1": c1,
            "client_overhead_ms_per_question_concurrency4": overhead["trivial_concurrency4"]["ms_per_question"],
            "client_overhead_cpu_ms_per_question_concurrency1":
                overhead["trivial_concurrency1"]["client_loop_cpu_ms_per_question"],
            "answers_equal_to_transformers_batch1": {
                name: ", ".join(map(str, c["answers_equal_to_reference"])) + f" of {c['of']}"
                for name, c in configs.items()}},
        "ratios": ratios,
        "configurations": configs,
        "client_overhead": overhead,
        "server": server_info,
        "setup": {
            "questions": n_questions, "max_new_tokens": args.max_new_tokens, "decoding": "greedy",
            "data": f"clevr preset, test split, first {n_questions} scenes (one area9 question each), 336 px",
            "images": image_bytes(questions), "overhead_questions": n_overhead,
            "rounds": repeat, "overhead_rounds": overhead_repeat,
            "threads": {"one_process_and_server": f"OMP_NUM_THREADS={args.threads}",
                        "torchrun_ranks": "OMP_NUM_THREADS unset in the launcher's environment: torchrun sets 1 "
                                          "per rank (see each run's processes[].torch_threads)",
                        "openai_client": "no torch in the client process"},
            "questions_per_s": "questions / the answering loop's wall (evaluation.runner._answer; torchrun: first "
                               "rank's start to last rank's end); process_questions_per_s: over the whole "
                               "process (start, imports, model load, checks, scoring)",
            "model": model_info},
        "load": {"at_start": load_at_start, "during_runs_mean_of_means": round(statistics.mean(during), 2),
                 "during_runs_max": max(r["load_1min"]["during_max"] for r in all_runs),
                 "others_cores_max": max(r["others_cores"] for r in all_runs)},
        "quick": quick,
        "wall_s": round(time.perf_counter() - started, 1),
        "provenance": provenance(0),
    }
    text = json.dumps(result, indent=2)
    print(text)
    result_path.parent.mkdir(parents=True, exist_ok=True)
    result_path.write_text(text + "\n")


if __name__ == "__main__":
    main()
