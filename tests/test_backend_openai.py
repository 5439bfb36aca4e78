"""`scenes2real evaluate --backend openai` against real processes and sockets: a `transformers serve` process
serving a tiny checkpoint answers as the transformers backend does in this process, a run resumes, a wrong
model or a stopped server stop the run with one line; and a small HTTP server of our own (tests/http_fakes.py)
answers 429, 500, 401 and 400 where we want them, and shows what each request carries."""
from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

pytest.importorskip("fastapi")   # transformers[serving]
pytest.importorskip("uvicorn")
pytest.importorskip("openai")

from blender_scenes.prompts import record_prompt  # noqa: E402
from blender_scenes.questions import read_questions  # noqa: E402
from scenes2real.cli import cli  # noqa: E402
from tests.http_fakes import FakeOpenAI, free_port  # noqa: E402
from tests.question_sets import write_mixed_questions  # noqa: E402

# one description per question, so each prompt is different (and names its question for the fake server)
DESCRIPTIONS = ["red star", "green circle", "blue square", "yellow triangle", "purple cube", "gray sphere",
                "small cylinder", "large cone", "person", "dog", "car", "cat"]
FAILING = "purple cube"   # the question the fake server fails in test_a_failed_question_...
SERVE_START_SECONDS = 120
KEY_VAR, KEY = "S2R_TEST_KEY", "sk-s2r-test-7f3a9c1e5b"
MAX_NEW_TOKENS = 10


# --- inputs --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A dataset folder with 12 small PNGs (different sizes and colours) and questions/test.jsonl."""
    root = tmp_path_factory.mktemp("dataset")
    write_mixed_questions(root, len(DESCRIPTIONS), DESCRIPTIONS)
    return root


@pytest.fixture(scope="module")
def questions(dataset) -> Path:
    return dataset / "questions" / "test.jsonl"


@pytest.fixture(scope="module")
def clean_model(tiny_checkpoint, tmp_path_factory) -> Path:
    """A copy of the tiny qwen2_5_vl checkpoint that never generates a special token but its end of turn.

    A random-weight model emits tokens like <|vision_start|> mid-answer; the transformers backend drops them
    when it decodes (skip_special_tokens) while `transformers serve` parses the generated ids with the family's
    response template (tool calls, reasoning), which keeps some and swallows text after others. A trained model
    never emits them in an answer; suppressing them in the model's generation config (which both honour) makes
    the two backends' answers comparable."""
    from transformers import AutoTokenizer, GenerationConfig

    folder = tmp_path_factory.mktemp("clean") / "tiny-qwen2_5_vl"
    shutil.copytree(tiny_checkpoint("qwen2_5_vl"), folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    generation = GenerationConfig.from_pretrained(folder)
    eos = generation.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
    special = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
    generation.suppress_tokens = sorted(special - eos)
    generation.save_pretrained(folder)
    return folder


# --- a `transformers serve` process --------------------------------------------------------------------------

def get_json(url: str, timeout: float = 5) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (it runs its model in a child process), SIGKILL what remains."""
    for signum, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signum)
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        with contextlib.suppress(ProcessLookupError):   # children that outlived the server
            os.killpg(proc.pid, signal.SIGKILL)
        return


@pytest.fixture(scope="module")
def served(clean_model, tmp_path_factory):
    """`transformers serve` of the clean tiny checkpoint on a free loopback port: (base_url, the model id the
    server lists). Its log is in the failure message when it does not come up."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    command = [sys.executable, "-m", "transformers.cli.transformers", "serve", str(clean_model),
               "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    with log_path.open("w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, "HF_HUB_OFFLINE": "1"}, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + SERVE_START_SECONDS
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                listed = get_json(f"{base_url}/models")
                break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not answer GET /v1/models within {SERVE_START_SECONDS} s:\n"
                            f"{log_path.read_text()[-4000:]}")
            time.sleep(0.25)
        ids = [m["id"] for m in listed["data"]]
        assert ids == [str(clean_model)], ids   # a server pinned to one model lists it under the path it was given
        yield base_url, ids[0], log_path
    finally:
        stop_group(proc)


# --- running the command -------------------------------------------------------------------------------------

def evaluate(model, questions: Path, out: Path, *extra, env: dict | None = None) -> Result:
    result = CliRunner().invoke(cli, ["evaluate", "--model", str(model), "--questions", str(questions),
                                      "--out", str(out), *map(str, extra)], env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def one_error_line(result: Result) -> str:
    """The run stopped with exit 2 and one `error:` line, the last of stderr (after any progress bar); that line."""
    assert result.exit_code == 2, result.output
    assert result.stderr.count("error:") == 1, result.output
    last = result.stderr.rstrip("\n").rpartition("\n")[2]
    assert last.startswith("error: "), result.output
    assert not result.stdout.strip(), result.output
    return last


def read_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def question_ids(questions: Path) -> list[str]:
    return [json.loads(line)["id"] for line in questions.read_text().splitlines()]


def no_rows(run_dir: Path) -> bool:
    path = run_dir / "predictions.jsonl"
    return not path.exists() or not path.read_text().strip()


def files_holding(folder: Path, text: str) -> list[Path]:
    if not folder.exists():
        return []
    return [p for p in folder.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


# --- against `transformers serve` ----------------------------------------------------------------------------

def test_server_answers_as_the_transformers_backend(served, clean_model, questions, tmp_path):
    base_url, model_id, log_path = served
    ids = question_ids(questions)
    local = evaluate(clean_model, questions, tmp_path / "local", "--batch-size", 1,
                     "--max-new-tokens", MAX_NEW_TOKENS, "--device", "cpu")
    assert local.exit_code == 0, local.output
    remote = evaluate(model_id, questions, tmp_path / "served", "--backend", "openai", "--base-url", base_url,
                      "--concurrency", 4, "--max-new-tokens", MAX_NEW_TOKENS)
    assert remote.exit_code == 0, remote.output + log_path.read_text()[-4000:]

    local_rows, served_rows = read_rows(tmp_path / "local"), read_rows(tmp_path / "served")
    assert [r["id"] for r in local_rows] == ids
    assert [r["id"] for r in served_rows] == ids
    assert all(isinstance(r["raw"], str) and "error" not in r for r in served_rows), served_rows
    differing = [(r["id"], r["raw"], s["raw"]) for r, s in zip(local_rows, served_rows) if r["raw"] != s["raw"]]
    assert len(differing) <= 0.05 * len(ids), f"(id, transformers, served) that differ: {differing}"
    assert len({r["raw"] for r in served_rows}) > 1, "answers do not depend on the input"

    run = read_json(tmp_path / "served" / "run.json")
    assert run["backend"] == "openai" and run["base_url"] == base_url and run["model"] == model_id
    assert run["served_model"]["id"] == model_id
    assert run["status"] == "complete" and run["errors"] == 0 and run["answered_now"] == len(ids)
    assert run["client"]["api_key_env"] is None and run["client"]["concurrency"] == 4
    assert not {"api_key", "key"} & set(run) and not {"api_key", "key"} & set(run["client"])
    assert "EMPTY" not in json.dumps(run)   # the placeholder key the client sends a keyless server
    assert read_json(tmp_path / "served" / "metrics.json")["errors"] == 0

    # resume: the same command again answers nothing new and leaves the rows as they were
    before = (tmp_path / "served" / "predictions.jsonl").read_text()
    again = evaluate(model_id, questions, tmp_path / "served", "--backend", "openai", "--base-url", base_url,
                     "--concurrency", 4, "--max-new-tokens", MAX_NEW_TOKENS)
    assert again.exit_code == 0, again.output
    assert read_json(tmp_path / "served" / "run.json")["answered_now"] == 0
    assert (tmp_path / "served" / "predictions.jsonl").read_text() == before


def test_a_model_the_server_does_not_serve_stops_the_run(served, questions, tmp_path):
    base_url, model_id, _ = served
    result = evaluate("no-such-model", questions, tmp_path / "run", "--backend", "openai", "--base-url", base_url)
    line = one_error_line(result)
    assert "no-such-model" in line and "not served" in line and model_id in line, line
    assert no_rows(tmp_path / "run")


def test_a_stopped_server_stops_the_run(questions, tmp_path):
    base_url = f"http://127.0.0.1:{free_port()}/v1"   # nothing listens there
    result = evaluate("any-model", questions, tmp_path / "run", "--backend", "openai", "--base-url", base_url,
                      "--max-retries", 0)
    line = one_error_line(result)
    assert "unreachable" in line and base_url in line, line
    assert no_rows(tmp_path / "run")


# --- against a fake server of our own ------------------------------------------------------------------------

@pytest.fixture
def fake():
    with FakeOpenAI() as server:
        yield server


def test_rate_limited_requests_are_retried_and_the_key_is_sent_never_recorded(fake, questions, tmp_path):
    fake.statuses = [429, 429, 429]
    out = tmp_path / "run"
    result = evaluate("fake-model", questions, out, "--backend", "openai", "--base-url", fake.url,
                      "--api-key-env", KEY_VAR, "--concurrency", 4, env={KEY_VAR: KEY})
    assert result.exit_code == 0, result.output
    ids = question_ids(questions)
    rows = read_rows(out)
    assert [r["id"] for r in rows] == ids
    assert all(r["raw"] == "top left" and "error" not in r for r in rows), rows
    assert read_json(out / "metrics.json")["errors"] == 0
    run = read_json(out / "run.json")
    assert run["status"] == "complete" and run["errors"] == 0
    assert len(fake.chat_requests()) == len(ids) + 3   # each 429 was retried
    assert {r["headers"].get("authorization") for r in fake.requests} == {f"Bearer {KEY}"}
    assert run["client"]["api_key_env"] == KEY_VAR and KEY_VAR in (out / "run.json").read_text()
    assert files_holding(out, KEY) == []


def test_a_failed_question_becomes_an_error_row_that_a_rerun_retries(fake, questions, tmp_path):
    fake.fail_texts[FAILING] = 500
    out = tmp_path / "run"
    command = ("fake-model", questions, out, "--backend", "openai", "--base-url", fake.url, "--max-retries", 1)
    ids = question_ids(questions)
    failing_id = ids[DESCRIPTIONS.index(FAILING)]

    result = evaluate(*command)
    assert result.exit_code == 0, result.output
    rows = read_rows(out)
    assert [r["id"] for r in rows] == ids
    failed = [r for r in rows if r.get("error")]
    assert [r["id"] for r in failed] == [failing_id] and failed[0]["raw"] is None, rows
    assert "500" in failed[0]["error"], failed[0]
    assert read_json(out / "metrics.json")["errors"] == 1
    run = read_json(out / "run.json")
    assert run["status"] == "incomplete" and run["errors"] == 1
    failing_requests = [r for r in fake.chat_requests() if FAILING in fake.prompt(r)]
    assert len(failing_requests) == 2   # the request and its one retry

    fake.fail_texts.clear()
    fake.clear()
    result = evaluate(*command)
    assert result.exit_code == 0, result.output
    again = fake.chat_requests()
    assert len(again) == 1 and FAILING in fake.prompt(again[0]), [fake.prompt(r) for r in again]
    rows = read_rows(out)
    assert [r["id"] for r in rows] == ids
    assert all(r["raw"] == "top left" and "error" not in r for r in rows), rows
    assert read_json(out / "metrics.json")["errors"] == 0
    run = read_json(out / "run.json")
    assert run["status"] == "complete" and run["errors"] == 0 and run["answered_now"] == 1


def test_a_refused_key_stops_the_run_naming_its_variable(fake, questions, tmp_path):
    fake.always = 401
    out = tmp_path / "run"
    result = evaluate("fake-model", questions, out, "--backend", "openai", "--base-url", fake.url,
                      "--api-key-env", KEY_VAR, env={KEY_VAR: KEY})
    line = one_error_line(result)
    assert KEY_VAR in line and "401" in line and KEY not in line, line
    assert files_holding(out, KEY) == []
    assert no_rows(out)


def test_a_request_the_server_refuses_stops_the_run_with_its_message(fake, questions, tmp_path):
    fake.statuses = [400] * 50
    fake.error_body = {"error": {"message": "image too large for this server"}}
    out = tmp_path / "run"
    result = evaluate("fake-model", questions, out, "--backend", "openai", "--base-url", fake.url)
    line = one_error_line(result)
    assert "image too large for this server" in line and "400" in line, line
    assert fake.chat_requests(), "the refusal came from a question's request"


def test_the_request_carries_the_image_bytes_and_the_prompt(fake, dataset, questions, tmp_path):
    result = evaluate("fake-model", questions, tmp_path / "run", "--backend", "openai", "--base-url", fake.url,
                      "--max-new-tokens", 7)
    assert result.exit_code == 0, result.output
    record = read_questions(questions)[3]
    prompt = record_prompt(record)
    sent = [r for r in fake.chat_requests() if fake.prompt(r) == prompt]
    assert len(sent) == 1, [fake.prompt(r) for r in fake.chat_requests()]
    body = sent[0]["body"]
    assert body["model"] == "fake-model" and body["temperature"] == 0 and body["max_tokens"] == 7
    assert len(body["messages"]) == 1 and body["messages"][0]["role"] == "user"
    image, text = body["messages"][0]["content"]
    assert image["type"] == "image_url"
    header, _, data = image["image_url"]["url"].partition(",")
    assert header == "data:image/png;base64"
    assert base64.b64decode(data, validate=True) == (dataset / record.image).read_bytes()
    assert text == {"type": "text", "text": prompt}


def test_an_unset_key_variable_stops_the_run(fake, questions, tmp_path, monkeypatch):
    monkeypatch.delenv("UNSET_VAR_XYZ", raising=False)
    result = evaluate("fake-model", questions, tmp_path / "run", "--backend", "openai", "--base-url", fake.url,
                      "--api-key-env", "UNSET_VAR_XYZ")
    line = one_error_line(result)
    assert "UNSET_VAR_XYZ" in line, line
    assert fake.requests == []
