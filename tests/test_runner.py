"""evaluation/runner.py through `scenes2real evaluate`: tiny checkpoints of each family are answered like
downloaded ones, runs resume after a kill, adapters load, bad input stops before any model work."""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from blender_scenes.labels import LABELS
from blender_scenes.questions import options_with_answer, question_text
from scenes2real.cli import cli

FAMILIES_RUN = ["qwen2_5_vl", "qwen2_vl", "qwen3_vl", "llava_onevision", "internvl", "idefics3", "smolvlm"]
DESCRIPTIONS = ["red star", "blue circle", "green square", "yellow triangle", "dog", "car"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A dataset folder with 6 small PNGs (different sizes and colours) and questions/test.jsonl."""
    from PIL import Image

    root = tmp_path_factory.mktemp("dataset")
    (root / "images" / "test").mkdir(parents=True)
    rng = random.Random(0)
    rows = []
    for i, description in enumerate(DESCRIPTIONS):
        width, height = 64 + 32 * i, 224 - 24 * i
        image = Image.new("RGB", (width, height), (40 * i, 255 - 40 * i, 128))
        image.paste((255, 0, 0), (i * 8, i * 4, i * 8 + 20, i * 4 + 20))
        image.save(root / "images" / "test" / f"{i:03d}.png")
        task = ("area9", "horizontal", "vertical")[i % 3]
        answer = rng.choice(LABELS[task])
        rows.append({"id": f"q{i}", "image": f"images/test/{i:03d}.png", "task": task,
                     "question": question_text(description),
                     "options": options_with_answer(task, answer, rng.randrange(len(LABELS[task])), rng),
                     "answer": answer, "source": "synthetic", "split": "test"})
    (root / "questions").mkdir()
    (root / "questions" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def evaluate(model, questions, out, *extra) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["evaluate", "--model", str(model), "--questions", str(questions),
                                      "--out", str(out), *map(str, extra)])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def read_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]


def question_ids(dataset: Path) -> list[str]:
    return [json.loads(line)["id"] for line in (dataset / "questions" / "test.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("model_type", FAMILIES_RUN)
def test_evaluate_answers_every_question_batched_as_one_at_a_time(model_type, dataset, tiny_checkpoint, tmp_path):
    if model_type == "smolvlm":
        pytest.importorskip("num2words")
    questions = dataset / "questions" / "test.jsonl"
    model = tiny_checkpoint(model_type)
    code, output = evaluate(model, questions, tmp_path / "batched", "--batch-size", 4, "--max-new-tokens", 6)
    assert code == 0, output
    rows = read_rows(tmp_path / "batched")
    assert [r["id"] for r in rows] == question_ids(dataset)
    for row in rows:
        assert {"id", "task", "raw", "parsed", "answer", "correct"} <= row.keys()
        assert isinstance(row["raw"], str)
        assert row["correct"] == (row["parsed"] == row["answer"])
    assert len({r["raw"] for r in rows}) > 1, "answers do not depend on the input"
    metrics = json.loads((tmp_path / "batched" / "metrics.json").read_text())
    assert metrics["n_predictions"] == len(rows) and metrics["missing"] == 0
    assert metrics["correct"] == sum(r["correct"] for r in rows)
    assert metrics["unparseable"] == sum(r["parsed"] is None for r in rows)
    run = json.loads((tmp_path / "batched" / "run.json").read_text())
    assert run["status"] == "complete" and run["model_type"] == model_type and run["answered_now"] == len(rows)

    # left padding: a question's answer does not depend on what it was batched with
    code, output = evaluate(model, questions, tmp_path / "single", "--batch-size", 1, "--max-new-tokens", 6)
    assert code == 0, output
    assert [r["raw"] for r in read_rows(tmp_path / "single")] == [r["raw"] for r in rows]


def test_killed_run_resumes_to_the_uninterrupted_result(dataset, tiny_checkpoint, tmp_path):
    questions = dataset / "questions" / "test.jsonl"
    model = tiny_checkpoint("qwen2_5_vl")
    full = tmp_path / "full"
    assert evaluate(model, questions, full, "--batch-size", 2)[0] == 0

    killed = tmp_path / "killed"
    assert evaluate(model, questions, killed, "--batch-size", 2, "--limit", 4)[0] == 0
    lines = (killed / "predictions.jsonl").read_text().splitlines(keepends=True)
    # two rows written, the third cut while being written
    (killed / "predictions.jsonl").write_text("".join(lines[:2]) + lines[2][: len(lines[2]) // 2])
    (killed / "metrics.json").unlink()
    code, output = evaluate(model, questions, killed, "--batch-size", 2)
    assert code == 0, output
    assert read_rows(killed) == read_rows(full)
    assert json.loads((killed / "run.json").read_text())["answered_now"] == 4
    assert json.loads((killed / "metrics.json").read_text())["n_predictions"] == 6

    # a finished run is only re-scored
    assert evaluate(model, questions, killed, "--batch-size", 2)[0] == 0
    assert json.loads((killed / "run.json").read_text())["answered_now"] == 0
    assert read_rows(killed) == read_rows(full)


def test_resume_with_other_settings_is_refused(dataset, tiny_checkpoint, tmp_path):
    questions = dataset / "questions" / "test.jsonl"
    run = tmp_path / "run"
    assert evaluate(tiny_checkpoint("qwen2_5_vl"), questions, run, "--limit", 2)[0] == 0
    before = (run / "predictions.jsonl").read_text()
    code, output = evaluate(tiny_checkpoint("qwen2_vl"), questions, run)
    assert code == 2
    assert "run.json: field 'model'" in output and len(output.strip().splitlines()) == 1
    assert (run / "predictions.jsonl").read_text() == before


def test_resume_after_the_weights_changed_in_place_is_refused(dataset, tmp_path):
    """A model retrained into the same folder keeps its path; its answers must not be mixed with the old ones."""
    from vlm_train.tiny import write_tiny_model

    questions = dataset / "questions" / "test.jsonl"
    model, run = tmp_path / "model", tmp_path / "run"
    write_tiny_model("qwen2_5_vl", model, seed=0)
    assert evaluate(model, questions, run, "--limit", 2)[0] == 0
    before = (run / "predictions.jsonl").read_text()
    assert evaluate(model, questions, run, "--limit", 3)[0] == 0   # same weights: resumes
    assert json.loads((run / "run.json").read_text())["answered_now"] == 1
    write_tiny_model("qwen2_5_vl", model, seed=1, replace=True)
    code, output = evaluate(model, questions, run)
    assert code == 2 and len(output.strip().splitlines()) == 1
    assert "run.json: field 'weights'" in output
    assert (run / "predictions.jsonl").read_text().startswith(before)


def test_limit_answers_the_first_questions(dataset, tiny_checkpoint, tmp_path):
    code, _ = evaluate(tiny_checkpoint("qwen2_5_vl"), dataset / "questions" / "test.jsonl", tmp_path / "run",
                       "--limit", 3)
    assert code == 0
    assert [r["id"] for r in read_rows(tmp_path / "run")] == question_ids(dataset)[:3]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["n_predictions"] == 3 and metrics["missing"] == 3


def _write_adapter(model_dir: Path, out: Path, random_init: bool) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    from vlm_train.families import family_of

    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=family_of(model).lora_target_regex(),
                      init_lora_weights=not random_init)  # default init: B = 0, the adapter is a no-op
    get_peft_model(model, lora).save_pretrained(out)
    return out


def test_adapter_is_loaded_and_changes_nothing_else(dataset, tiny_checkpoint, tmp_path):
    questions = dataset / "questions" / "test.jsonl"
    model = tiny_checkpoint("qwen2_5_vl")
    assert evaluate(model, questions, tmp_path / "base", "--batch-size", 3)[0] == 0
    base = read_rows(tmp_path / "base")

    noop = _write_adapter(model, tmp_path / "noop", random_init=False)
    assert evaluate(model, questions, tmp_path / "noop-run", "--batch-size", 3, "--adapter", noop)[0] == 0
    assert read_rows(tmp_path / "noop-run") == base  # same prompts, processor and decoding
    run = json.loads((tmp_path / "noop-run" / "run.json").read_text())
    assert run["adapter"] == str(noop.resolve())

    trained = _write_adapter(model, tmp_path / "trained", random_init=True)
    assert evaluate(model, questions, tmp_path / "trained-run", "--batch-size", 3, "--adapter", trained)[0] == 0
    adapted = read_rows(tmp_path / "trained-run")
    assert [r["id"] for r in adapted] == [r["id"] for r in base]
    assert [r["raw"] for r in adapted] != [r["raw"] for r in base]
    assert json.loads((tmp_path / "trained-run" / "run.json").read_text())["processor"] == str(model.resolve())


def test_processor_saved_with_the_adapter_is_used(dataset, tiny_checkpoint, tmp_path):
    from transformers import AutoProcessor

    questions = dataset / "questions" / "test.jsonl"
    model = tiny_checkpoint("qwen2_5_vl")
    adapter = _write_adapter(model, tmp_path / "adapter", random_init=False)
    processor = AutoProcessor.from_pretrained(model)
    # the trainer saves its processor beside the adapter; here its template adds a system prompt
    processor.chat_template = processor.chat_template.replace("You are a helpful assistant.", "Be brief.")
    processor.save_pretrained(adapter)
    assert evaluate(model, questions, tmp_path / "with-processor", "--adapter", adapter, "--limit", 3)[0] == 0
    with_processor = read_rows(tmp_path / "with-processor")
    assert json.loads((tmp_path / "with-processor" / "run.json").read_text())["processor"] == str(adapter.resolve())

    assert evaluate(model, questions, tmp_path / "base", "--limit", 3)[0] == 0
    assert [r["raw"] for r in read_rows(tmp_path / "base")] != [r["raw"] for r in with_processor]


@pytest.mark.parametrize("case", ["unknown model path", "model folder without config", "missing image",
                                  "empty question file", "adapter without config", "invalid question"])
def test_bad_input_is_one_line_and_exit_2(case, dataset, tiny_checkpoint, tmp_path):
    model = tiny_checkpoint("qwen2_5_vl")
    questions = dataset / "questions" / "test.jsonl"
    extra: list = []
    if case == "unknown model path":
        model, expected = tmp_path / "no" / "such-model", "--model"
    elif case == "model folder without config":
        (tmp_path / "empty-model").mkdir()
        model, expected = tmp_path / "empty-model", "config.json"
    elif case == "missing image":
        copy = tmp_path / "questions" / "test.jsonl"
        copy.parent.mkdir()
        shutil.copy(questions, copy)  # image paths are relative to the dataset root, now tmp_path
        questions, expected = copy, "field 'image'"
    elif case == "empty question file":
        questions, expected = tmp_path / "empty.jsonl", "no questions"
        questions.write_text("\n")
    elif case == "adapter without config":
        (tmp_path / "adapter").mkdir()
        extra, expected = ["--adapter", tmp_path / "adapter"], "adapter_config.json"
    else:
        questions, expected = tmp_path / "bad.jsonl", "bad.jsonl:1: field 'task'"
        questions.write_text(json.dumps({"id": "x", "image": "a.png", "task": "colour", "question": "?",
                                         "answer": "near"}) + "\n")
    code, output = evaluate(model, questions, tmp_path / "run", *extra)
    assert code == 2
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], output
    assert not (tmp_path / "run").exists()


def test_cuda_without_a_gpu_is_refused_before_writing(dataset, tiny_checkpoint, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, output = evaluate(tiny_checkpoint("qwen2_5_vl"), dataset / "questions" / "test.jsonl", tmp_path / "run",
                            "--device", "cuda")
    assert code == 2 and output.strip() == "error: --device cuda: no CUDA device here (expected auto or cpu)"
    assert not (tmp_path / "run").exists()
