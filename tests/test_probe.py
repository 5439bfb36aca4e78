"""evaluation/probe.py and probe_fit.py through `scenes2real probe`: one entry per layer (embeddings + each
decoder layer) on tiny checkpoints and the rendered demo questions, the hidden-state cache, the comparison
figure, the probe's fit on synthetic features, and bad input stopping with one line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from evaluation.probe_fit import fit_probes
from scenes2real.cli import cli
from tests.test_runner import _write_adapter

FAMILIES = ["qwen2_5_vl", "llava_onevision"]


def probe(*args) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["probe", *map(str, args)])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def train_questions(demo_dataset) -> Path:
    return demo_dataset / "questions" / "train.jsonl"


def decoder_layers(model: Path) -> int:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(model).get_text_config().num_hidden_layers


@pytest.mark.parametrize("model_type", FAMILIES)
def test_probe_gives_one_entry_per_layer_and_reuses_its_cache(model_type, tiny_checkpoint, train_questions,
                                                              tmp_path):
    model = tiny_checkpoint(model_type)
    out = tmp_path / "probe"
    code, output = probe("--model", model, "--questions", train_questions, "--out", out, "--batch-size", 5)
    assert code == 0, output
    result = json.loads((out / "probe.json").read_text())
    answers = {json.loads(line)["answer"] for line in train_questions.read_text().splitlines()
               if json.loads(line)["task"] == "area9"}
    assert result["n"] == sum(result["answers"].values()) and set(result["answers"]) == answers
    assert result["chance"] == pytest.approx(1 / len(answers), abs=1e-4)
    assert len(result["layers"]) == len(result["control"]) == decoder_layers(model) + 1
    for scores in (result["layers"], result["control"]):
        assert [s["layer"] for s in scores] == list(range(len(scores)))
        for s in scores:
            assert 0 <= s["ci"][0] <= s["accuracy"] <= s["ci"][1] <= 1
    assert result["hidden_states"] == "computed" and result["model_type"] == model_type
    assert (out / "probe.png").read_bytes().startswith(b"\x89PNG")

    # a re-fit with other folds reads the cache: the model does not run again
    cache = out / "hidden_states.npz"
    stamp = cache.stat().st_mtime_ns
    code, output = probe("--model", model, "--questions", train_questions, "--out", out, "--folds", 2)
    assert code == 0, output
    again = json.loads((out / "probe.json").read_text())
    assert again["hidden_states"] == "cached" and again["folds"] == 2 and cache.stat().st_mtime_ns == stamp

    # another task is other records: computed again
    code, output = probe("--model", model, "--questions", train_questions, "--out", out, "--task", "horizontal")
    assert code == 0, output
    other = json.loads((out / "probe.json").read_text())
    assert other["hidden_states"] == "computed" and other["chance"] == pytest.approx(1 / 3, abs=1e-4)


def test_weights_rewritten_in_place_are_probed_again(train_questions, tmp_path):
    """The cache is keyed by the weights' fingerprint, not only the model's path (a model retrained into the
    same folder)."""
    from vlm_train.tiny import write_tiny_model

    model, out = tmp_path / "model", tmp_path / "probe"
    write_tiny_model("qwen2_5_vl", model, seed=0)
    assert probe("--model", model, "--questions", train_questions, "--out", out)[0] == 0
    first = np.load(out / "hidden_states.npz")["features"]
    write_tiny_model("qwen2_5_vl", model, seed=1, replace=True)
    code, output = probe("--model", model, "--questions", train_questions, "--out", out)
    assert code == 0, output
    assert json.loads((out / "probe.json").read_text())["hidden_states"] == "computed"
    assert not np.array_equal(np.load(out / "hidden_states.npz")["features"], first)


def test_probe_decodes_the_label_where_a_layer_carries_it():
    rng = np.random.default_rng(0)
    labels = [f"area{i % 9}" for i in range(180)]
    features = rng.normal(size=(180, 4, 24)).astype(np.float32)
    codes = rng.normal(size=(9, 24)) * 3  # layer 2 holds each label's own direction, plus noise
    features[:, 2] += codes[[i % 9 for i in range(180)]]
    fit = fit_probes(features, labels, folds=3, seed=0)
    accuracy = [s.accuracy for s in fit.layers]
    assert fit.chance == pytest.approx(1 / 9)
    assert accuracy[2] > 0.95
    for layer in (0, 1, 3):
        assert accuracy[layer] < 0.3
    assert max(s.accuracy for s in fit.control) < 0.3
    assert fit.layers[2].ci[0] > 0.85 and fit.layers[0].ci[1] < 0.4
    # seeded: the same numbers twice
    assert fit_probes(features, labels, folds=3, seed=0) == fit


def test_an_adapter_is_applied_and_its_states_cached_apart(tiny_checkpoint, train_questions, tmp_path):
    model = tiny_checkpoint("qwen2_5_vl")
    adapter = _write_adapter(model, tmp_path / "adapter", random_init=True)
    common = ["--model", model, "--questions", train_questions, "--out", tmp_path / "out", "--task", "horizontal"]
    assert probe(*common)[0] == 0
    base = np.load(tmp_path / "out" / "hidden_states.npz")["features"]
    code, output = probe(*common, "--adapter", adapter)
    assert code == 0, output
    result = json.loads((tmp_path / "out" / "probe.json").read_text())
    assert result["hidden_states"] == "computed" and result["adapter"] == str(adapter.resolve())
    adapted = np.load(tmp_path / "out" / "hidden_states.npz")["features"]
    assert adapted.shape == base.shape and not np.allclose(adapted[:, -1], base[:, -1])


def test_compare_draws_two_probes_on_one_figure(tiny_checkpoint, train_questions, tmp_path):
    model = tiny_checkpoint("qwen2_5_vl")
    for name, task in (("a", "horizontal"), ("b", "vertical")):
        code, output = probe("--model", model, "--questions", train_questions, "--out", tmp_path / name,
                             "--task", task, "--limit", 24, "--folds", 2)
        assert code == 0, output
    code, output = probe("--compare", tmp_path / "a", tmp_path / "b", "--out", tmp_path / "cmp")
    assert code == 0, output
    assert (tmp_path / "cmp" / "compare.png").read_bytes().startswith(b"\x89PNG")
    rows = json.loads((tmp_path / "cmp" / "compare.json").read_text())["runs"]
    assert [(r["name"], r["task"], r["n"]) for r in rows] == [("a", "horizontal", 24), ("b", "vertical", 24)]
    assert "| a | horizontal | 24 |" in (tmp_path / "cmp" / "compare.md").read_text()


def test_bad_input_is_one_line_and_writes_nothing(tiny_checkpoint, train_questions, tmp_path):
    model = tiny_checkpoint("qwen2_5_vl")
    out = tmp_path / "out"
    cases = [
        (["--model", model, "--questions", tmp_path / "missing.jsonl"], "file not found"),
        (["--model", model, "--questions", train_questions, "--task", "left_right"], "no records of task"),
        (["--model", model, "--questions", train_questions, "--folds", 5], "fewer than 5 records"),
        (["--model", tmp_path / "no-model", "--questions", train_questions], "folder not found"),
        (["--questions", train_questions], "expected --model and --questions"),
        (["--compare", tmp_path / "nothing", tmp_path / "else"], "file not found"),
        (["--compare", tmp_path / "nothing", "--model", model], "probe folders only"),
    ]
    for args, message in cases:
        code, output = probe(*args, "--out", out)
        assert code == 2, output
        lines = error_lines(output)
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], output
    assert not out.exists()


def test_a_training_fold_with_one_label_predicts_that_label():
    """The shuffled control of a small probe can leave one label in a training fold: its fold is predicted as that
    label (LinearSVC refuses to fit one class)."""
    from evaluation.probe_fit import out_of_fold

    labels = np.array(["left", "left", "right", "right"])
    splits = [(np.array([0, 1]), np.array([2, 3])), (np.array([2, 3]), np.array([0, 1]))]
    predicted, _ = out_of_fold(np.random.default_rng(0).normal(size=(4, 8)), labels, splits)
    assert predicted.tolist() == ["right", "right", "left", "left"]
