"""vlm_train/train.py and the `train` command on tiny checkpoints: the loss goes down, the best adapter saves
and reloads, early stopping keeps the best epoch, a killed run resumed ends with the same weights, and bad
input stops before any training."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from transformers import TrainerCallback

from scenes2real.cli import cli
from blender_scenes.errors import InputError
from tests.question_sets import AREAS, write_question_set
from vlm_train.train import TrainConfig, train


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared; tiny models gain nothing from more
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def questions(tmp_path):
    train_file = write_question_set(tmp_path / "data", "train", [AREAS[i % 9] for i in range(6)])
    val_file = write_question_set(tmp_path / "data", "val", [AREAS[(2 * i + 1) % 9] for i in range(3)], seed=1)
    return train_file, val_file


def _config(model, train_file, val_file, out, **overrides):
    values = dict(model=str(model), train=str(train_file), val=str(val_file) if val_file else None, out=str(out),
                  epochs=3, lr=5e-3, batch_size=2, lora_r=4, lora_alpha=8)
    return TrainConfig(**{**values, **overrides})


def _adapter(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def test_training_lowers_the_loss_and_the_adapter_reloads(tmp_path, tiny_checkpoint, questions):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vlm_train.data import ChatCollator, QuestionDataset, load_examples

    model_dir = tiny_checkpoint("qwen2_5_vl")
    out = tmp_path / "run"
    stats = train(_config(model_dir, *questions, out))
    epochs = stats["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    assert epochs[-1]["val_loss"] < epochs[0]["val_loss"]
    assert all(e["val_perplexity"] == pytest.approx(torch.tensor(e["val_loss"]).exp().item()) for e in epochs)
    assert stats["best_epoch"] == 3 and stats["finished"]
    assert json.loads((out / "train_stats.json").read_text()) == json.loads(json.dumps(stats))
    config = json.loads((out / "train_config.json").read_text())
    assert config["lr"] == 5e-3 and config["lora_r"] == 4 and config["lora_modules"] == 8
    assert (out / "train.log").read_text().count("eval_loss") == 3

    # the adapter reloads onto a fresh base, and it changes the model's output
    processor = AutoProcessor.from_pretrained(out / "best")
    batch = ChatCollator(processor)([QuestionDataset(load_examples(questions[1]))[0]])
    base = AutoModelForImageTextToText.from_pretrained(model_dir)
    with torch.no_grad():
        base_loss = base(**batch).loss
        tuned = PeftModel.from_pretrained(base, out / "best")
        tuned_loss = tuned(**batch).loss
        generated = tuned.generate(**{k: v for k, v in batch.items() if k != "labels"}, max_new_tokens=3,
                                   do_sample=False)
    assert tuned_loss < base_loss
    assert generated.shape[1] > batch["input_ids"].shape[1]
    saved = _adapter(out / "best")
    assert any(v.abs().sum() > 0 for k, v in saved.items() if "lora_B" in k)  # B starts at zero

    # and `scenes2real evaluate` answers every question with base model + adapter
    result = CliRunner().invoke(cli, ["evaluate", "--model", str(model_dir), "--adapter", str(out / "best"),
                                      "--questions", str(questions[1]), "--out", str(tmp_path / "eval"),
                                      "--device", "cpu", "--max-new-tokens", "4"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["n_predictions"] == 3 and summary["missing"] == 0
    run = json.loads((tmp_path / "eval" / "run.json").read_text())
    assert run["adapter"] == str(out / "best")


class Killed(Exception):
    pass


class KillAtStep(TrainerCallback):
    """Stands in for a kill: the process dies after `step` optimizer steps, past the last checkpoint."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Killed


@pytest.mark.parametrize("full", [False, True], ids=["lora", "full"])
def test_resume_after_kill_gives_the_same_weights(tmp_path, tiny_checkpoint, questions, full):
    model_dir = tiny_checkpoint("qwen2_5_vl")
    whole = train(_config(model_dir, *questions, tmp_path / "whole", full=full))
    with pytest.raises(Killed):  # 3 steps per epoch: killed in epoch 2, after the epoch-1 checkpoint
        train(_config(model_dir, *questions, tmp_path / "killed", full=full), callbacks=[KillAtStep(5)])
    assert not (tmp_path / "killed" / "best").exists()
    with pytest.raises(InputError, match="--resume"):
        train(_config(model_dir, *questions, tmp_path / "killed", full=full))
    resumed = train(_config(model_dir, *questions, tmp_path / "killed", full=full, resume=True))
    assert json.loads((tmp_path / "killed" / "train_config.json").read_text())["resumed_from"].endswith("checkpoint-3")
    a, b = _weights(tmp_path / "whole" / "best"), _weights(tmp_path / "killed" / "best")
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] - b[key]).abs().max() <= 1e-6, key
    strip = lambda s: [{k: v for k, v in e.items() if "time" not in k} for e in s["epochs"]]  # noqa: E731
    assert strip(resumed) == strip(whole)


def _weights(folder):
    from safetensors.torch import load_file

    name = "adapter_model.safetensors" if (folder / "adapter_model.safetensors").is_file() else "model.safetensors"
    return load_file(str(folder / name))


# (--full, learning rate, LoRA rank): settings under which the validation loss turns up within a few epochs
EARLY_STOP_SETTINGS = {"full": (True, 3e-2, 4), "lora": (False, 0.1, 8)}


@pytest.mark.parametrize("mode", sorted(EARLY_STOP_SETTINGS))
def test_early_stopping_keeps_the_best_epoch(tmp_path, tiny_checkpoint, mode):
    full, lr, rank = EARLY_STOP_SETTINGS[mode]
    # validation answers contradict training answers: once training has fitted "top left", "bottom right"
    # becomes ever less likely and the validation loss rises
    train_file = write_question_set(tmp_path / "data", "train", ["top left"] * 12)
    val_file = write_question_set(tmp_path / "data", "val", ["bottom right"] * 3, seed=1)
    out = tmp_path / "run"
    # room to stop early: on some CPUs the loss turns up only at epoch 5
    stats = train(_config(tiny_checkpoint("qwen2_5_vl"), train_file, val_file, out, epochs=10, lr=lr, full=full,
                          lora_r=rank, lora_alpha=2 * rank, patience=2))
    losses = [e["val_loss"] for e in stats["epochs"]]
    assert stats["stopped_early"] and len(losses) == stats["best_epoch"] + 2 < 10
    assert losses[stats["best_epoch"] - 1] == min(losses) < losses[-1]
    # `best` holds the weights of the best epoch's checkpoint (the whole model with --full), not the last ones
    kept = out / "checkpoints" / stats["best_checkpoint"].split("/")[-1]
    assert (out / "best" / "model.safetensors").is_file() == full
    saved, expected = _weights(out / "best"), _weights(kept)
    last = _weights(sorted((out / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[-1])
    assert saved.keys() == expected.keys()
    assert all((saved[k] - expected[k]).abs().max() == 0 for k in saved)
    assert any((saved[k] - last[k]).abs().max() > 0 for k in saved)


@pytest.mark.parametrize("family", ["qwen2_vl", "llava_onevision", "idefics3"])
def test_other_families_train_with_auto_targets(tmp_path, tiny_checkpoint, questions, family):
    out = tmp_path / "run"
    stats = train(_config(tiny_checkpoint(family), questions[0], None, out, epochs=1))
    assert len(stats["epochs"]) == 1 and stats["epochs"][0]["train_loss"] > 0
    adapted = {k.split(".lora_")[0] for k in _adapter(out / "best")}
    vision = {"qwen2_vl": "visual.", "llava_onevision": "vision_tower.", "idefics3": "vision_model."}[family]
    assert any(vision in k for k in adapted) and any("self_attn" in k and vision not in k for k in adapted)


def _cli_train(*args):
    return CliRunner().invoke(cli, ["train", *map(str, args)])


def test_bad_inputs_fail_before_training(tmp_path, tiny_checkpoint, questions):
    model_dir = tiny_checkpoint("qwen2_5_vl")
    train_file, val_file = questions
    out = tmp_path / "run"

    missing = write_question_set(tmp_path / "broken", "train", ["center", "top left"])
    (tmp_path / "broken" / "images" / "train" / "0001.png").unlink()
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    cases = {
        "missing image": (["--model", model_dir, "--train", missing], "0001.png"),
        "empty file": (["--model", model_dir, "--train", empty], "no question records"),
        "missing val image": (["--model", model_dir, "--train", train_file, "--val", missing], "0001.png"),
        "unknown model": (["--model", tmp_path / "no-such-model", "--train", train_file], "no-such-model"),
        "fractional warm-up steps": (["--model", model_dir, "--train", train_file, "--warmup", "2.5"],
                                     "--warmup: expected a whole number of steps"),
        "no LoRA rank": (["--model", model_dir, "--train", train_file, "--lora-r", "0"], "--lora-r: "),
    }
    for name, (args, expected) in cases.items():
        result = _cli_train(*args, "--out", out)
        assert result.exit_code == 2, name
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], (name, result.output)
        assert not out.exists(), name


def test_warmup_raises_the_learning_rate_linearly_then_it_decays(tmp_path, tiny_checkpoint, questions):
    class Rates(TrainerCallback):
        def __init__(self):
            self.rates = []

        def on_step_begin(self, args, state, control, lr_scheduler=None, **kwargs):
            self.rates.append(lr_scheduler.get_last_lr()[0])

    model_dir = tiny_checkpoint("qwen2_5_vl")
    for warmup, steps in ((4, 4), (0.5, 5)):   # 9 steps: 3 epochs of 3 batches; a fraction of them, rounded up
        rates = Rates()
        train(_config(model_dir, questions[0], None, tmp_path / f"run-{warmup}", warmup=warmup), callbacks=[rates])
        assert len(rates.rates) == 9
        assert rates.rates[:steps + 1] == pytest.approx([5e-3 * i / steps for i in range(steps + 1)]), warmup
        assert rates.rates[steps:] == sorted(rates.rates[steps:], reverse=True) and rates.rates[-1] < 5e-3


@pytest.mark.slow
def test_torchrun_two_processes_train_one_model(tmp_path, tiny_checkpoint, questions):
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "scenes2real", "train",
               "--model", str(tiny_checkpoint("qwen2_5_vl")), "--train", str(questions[0]), "--val",
               str(questions[1]), "--out", str(out), "--epochs", "2", "--lr", "1e-3", "--lora-r", "4"]
    subprocess.run(command, check=True, env=env, capture_output=True, timeout=600)
    config = json.loads((out / "train_config.json").read_text())
    assert config["world_size"] == 2
    log = [json.loads(line) for line in (out / "train.log").read_text().splitlines()]
    # 6 examples over 2 processes at batch 1: 3 optimizer steps per epoch, logged once (by the main process)
    assert [e["step"] for e in log if "eval_loss" in e] == [3, 6]
    assert (out / "best" / "adapter_model.safetensors").is_file()


def test_dry_run_shows_the_first_batch_without_loading_weights(tmp_path, tiny_checkpoint, questions, monkeypatch):
    """`train --dry-run` with the published Qwen2.5-VL template: the text holds the template's system prompt and
    the labels are exactly the answer, <|im_end|> and its newline; no weights load, no run is started."""
    from transformers import AutoModelForImageTextToText

    def refuse(*args, **kwargs):
        raise AssertionError("--dry-run loaded model weights")

    monkeypatch.setattr(AutoModelForImageTextToText, "from_pretrained", refuse)
    train_file, val_file = questions
    out = tmp_path / "run"
    result = _cli_train("--model", tiny_checkpoint("qwen2_5_vl"), "--train", train_file, "--val", val_file,
                        "--out", out, "--batch-size", 2, "--dry-run")
    assert result.exit_code == 0, result.output
    example = json.loads((out / "example.json").read_text())
    answer = json.loads(train_file.read_text().splitlines()[0])["answer"]
    assert example["text"].startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n")
    assert "<|image_pad|>" in example["text"] and example["text"].endswith(f"{answer}<|im_end|>\n")
    assert example["labels"] == f"{answer}<|im_end|>\n"
    assert example["text"] in result.output and example["labels"] in result.output
    assert sorted(p.name for p in out.iterdir()) == ["example.json"]


def test_bf16_trains_on_a_cpu(tmp_path, tiny_checkpoint, questions):
    """--dtype bf16 without a GPU trains (bf16 autocast on the CPU): the Trainer refused it unless told use_cpu."""
    out = tmp_path / "run"
    stats = train(_config(tiny_checkpoint("qwen2_5_vl"), *questions, out, epochs=1, dtype="bf16",
                          gradient_checkpointing=True))
    assert stats["finished"]
    assert json.loads((out / "train_config.json").read_text())["dtype_resolved"] == "bf16"
