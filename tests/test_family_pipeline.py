"""Every family of the table through the whole user path, as a user runs it: tiny-model -> train (LoRA on both
towers) -> evaluate with the adapter (batch 1 and batch 8 give the same raw answers) -> probe -> merge-adapter
-> evaluate the merged checkpoint -> export (TRL, LLaMA-Factory). A family added to `vlm_train/families.py` is
tested here without another line."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.clirun import run_in_process
from vlm_train.families import FAMILIES


def run(*args) -> str:
    return run_in_process(*args).stdout


def raw_answers(run_dir: Path) -> dict[str, str]:
    return {r["id"]: r["raw"] for r in map(json.loads, (run_dir / "predictions.jsonl").read_text().splitlines())}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_whole_path(family, tmp_path, tiny_checkpoint, demo_dataset):
    model, questions = tiny_checkpoint(family), demo_dataset / "questions" / "val.jsonl"   # 44 questions
    n = len(questions.read_text().splitlines())
    run("train", "--model", model, "--train", questions, "--val", questions, "--out", tmp_path / "run",
        "--epochs", "1", "--lr", "1e-3", "--lora-r", "4", "--lora-alpha", "8")
    adapter = tmp_path / "run" / "best"
    assert (adapter / "adapter_model.safetensors").is_file()
    targets = json.loads((tmp_path / "run" / "train_config.json").read_text())["lora_targets"]
    assert targets and ("vision" in str(targets) or len(targets) > 1), targets   # both towers adapted

    for batch in (1, 8):
        run("evaluate", "--model", model, "--adapter", adapter, "--questions", questions,
            "--out", tmp_path / f"eval-b{batch}", "--batch-size", batch, "--max-new-tokens", "6")
    assert raw_answers(tmp_path / "eval-b1") == raw_answers(tmp_path / "eval-b8")
    assert len(raw_answers(tmp_path / "eval-b1")) == n

    result = json.loads(run("probe", "--model", model, "--adapter", adapter, "--questions", questions,
                            "--out", tmp_path / "probe", "--task", "horizontal", "--folds", "2"))
    assert result["layers"] >= 2

    run("merge-adapter", "--model", model, "--adapter", adapter, "--out", tmp_path / "merged")
    run("evaluate", "--model", tmp_path / "merged", "--questions", questions, "--out", tmp_path / "eval-merged",
        "--batch-size", "8", "--max-new-tokens", "6")
    assert len(raw_answers(tmp_path / "eval-merged")) == n

    for fmt in ("trl", "llamafactory"):
        written = run("export", questions, "--format", fmt, "--out", tmp_path / f"export-{fmt}").split()
        assert written and all(Path(p).stat().st_size > 0 for p in written)
