"""Progress on stderr: `train`'s bar per epoch and its line of losses after each epoch, readable in a captured
(non-terminal) stderr, and its training curve (train_curve.png, the same bytes for the same statistics); `audit`'s
bar per phase, with the report on stdout unchanged; `--quiet` for both."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from scenes2real.cli import cli
from tests.question_sets import AREAS, write_question_set
from vlm_train.curve import DPI, SIZE_INCHES, TRAIN_COLOR, VAL_COLOR, draw_curve, write_curve

ROOT = Path(__file__).resolve().parents[1]
RECORDS, VAL_RECORDS, BATCH, ACCUM, EPOCHS = 5, 3, 2, 2, 2


def run(*args) -> subprocess.CompletedProcess:
    """`scenes2real ARGS` in its own process, stdout and stderr apart (neither a terminal)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}   # the machine is shared
    done = subprocess.run([sys.executable, "-m", "scenes2real", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def lines_of(stderr: str) -> list[str]:
    """stderr's lines, as a log shows them (no carriage-return redraws inside our lines)."""
    return [line.rstrip() for line in stderr.split("\n")]


def colour_pixels(png: Path, hex_colour: str) -> int:
    rgb = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return sum(count for count, colour in Image.open(png).convert("RGB").getcolors(1 << 20) if colour == rgb)


@pytest.fixture
def questions(tmp_path):
    train_file = write_question_set(tmp_path / "data", "train", [AREAS[i % 9] for i in range(RECORDS)])
    val_file = write_question_set(tmp_path / "data", "val", [AREAS[(2 * i + 1) % 9] for i in range(VAL_RECORDS)],
                                  seed=1)
    return train_file, val_file


def test_train_shows_a_bar_per_epoch_a_line_of_losses_and_draws_its_curve(tmp_path, tiny_checkpoint, questions):
    out = tmp_path / "run"
    args = ["train", "--model", tiny_checkpoint("qwen2_5_vl"), "--train", questions[0], "--val", questions[1],
            "--out", out, "--batch-size", BATCH, "--grad-accum", ACCUM, "--lr", "5e-3", "--lora-r", 4,
            "--patience", 5]
    done = run(*args, "--epochs", EPOCHS)
    steps = math.ceil(math.ceil(RECORDS / BATCH) / ACCUM)   # optimizer steps per epoch: the last window is partial
    val_batches = math.ceil(VAL_RECORDS / BATCH)
    lines = lines_of(done.stderr)
    stats = json.loads((out / "train_stats.json").read_text())
    for epoch in range(1, EPOCHS + 1):
        bar = (rf"epoch {epoch}/{EPOCHS}: 100%\|.*\| {steps}/{steps} "
               r"\[\d\d:\d\d<00:00, +[\d.]+(step/s|s/step), loss=[\d.]+\]")
        assert any(re.fullmatch(bar, line) for line in lines), done.stderr
        val = rf"epoch {epoch}/{EPOCHS} val: 100%\|.*\| {val_batches}/{val_batches} \[.*\]"
        assert any(re.fullmatch(val, line) for line in lines), done.stderr
        row, before = stats["epochs"][epoch - 1], [e["val_loss"] for e in stats["epochs"][:epoch - 1]]
        best_so_far = row["val_loss"] < min(before, default=math.inf)
        summary = (f"epoch {epoch}/{EPOCHS}: train loss {row['train_loss']:.4g}, val loss {row['val_loss']:.4g}"
                   + (" (best)" if best_so_far else ""))
        assert summary in lines, done.stderr
    # a bar's lines come in order: it starts, it ends, then the epoch's line of losses
    first = [i for i, line in enumerate(lines) if line.startswith("epoch 1/2")]
    assert lines[first[0]].startswith("epoch 1/2:   0%") and lines[first[-1]].startswith("epoch 1/2: train loss")
    assert json.loads(done.stdout.splitlines()[-1])["curve"] == f"{out}/train_curve.png"

    curve = out / "train_curve.png"
    with Image.open(curve) as image:
        assert image.format == "PNG" and image.size == (round(SIZE_INCHES[0] * DPI), round(SIZE_INCHES[1] * DPI))
    assert colour_pixels(curve, TRAIN_COLOR) > 50 and colour_pixels(curve, VAL_COLOR) > 50
    # the same statistics give the same bytes, whoever draws them
    again = write_curve(json.loads((out / "train_stats.json").read_text()), tmp_path / "again.png")
    assert again.read_bytes() == curve.read_bytes()
    assert draw_curve(stats["epochs"], 1) != curve.read_bytes()   # and the best epoch is part of the picture

    # --quiet: no bar, no line of losses (in-process: stderr and stdout together in the output); a resumed run's
    # curve and statistics cover every epoch
    result = CliRunner().invoke(cli, [str(a) for a in args] + ["--epochs", "3", "--resume", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "%|" not in result.output and "epoch 3/3" not in result.output, result.output
    resumed = json.loads((out / "train_stats.json").read_text())
    assert [e["epoch"] for e in resumed["epochs"]] == [1, 2, 3]
    assert curve.read_bytes() == draw_curve(resumed["epochs"], resumed["best_epoch"])


def test_audit_shows_a_bar_per_phase_and_its_report_alone_on_stdout(demo_dataset, tmp_path):
    scenes = len(list(demo_dataset.glob("scenes/*/*.json")))
    done = run("audit", demo_dataset, "--out", tmp_path / "a")
    phases = [rf"audit: scenes: labels from pixels .* {scenes}/{scenes} .*", r"audit: checks .* 5/5 .*",
              r"audit: pictures .* 6/6 .*"]
    for phase in phases:
        assert any(re.fullmatch(phase, line) for line in lines_of(done.stderr)), done.stderr
    # stdout: the report's two lines, as before
    h = json.loads((tmp_path / "a" / "report.json").read_text())["headline"]
    folder = re.escape(str(tmp_path / "a"))
    assert re.fullmatch(rf"ok: {scenes} scenes, labels verified {h['labels_verified']}/{h['targets']} \(100.0%\)\n"
                        rf"  failures: 0, informational: {h['informational']}; report: {folder}/report.html "
                        r"\([\d.]+ s\)\n", done.stdout), done.stdout

    questions = demo_dataset / "questions" / "val.jsonl"
    records = len(questions.read_text().splitlines())
    done = run("audit", questions, "--out", tmp_path / "q")
    for phase in (rf"audit: questions: labels from boxes .* {records}/{records} .*", r"audit: pictures .* 2/2 .*"):
        assert any(re.fullmatch(phase, line) for line in lines_of(done.stderr)), done.stderr
    quiet = run("audit", questions, "--out", tmp_path / "quiet", "--quiet")
    assert quiet.stderr == ""

    def report(stdout: str, folder: Path) -> str:   # but for the folder and the seconds
        return re.sub(r"\([\d.]+ s\)", "", stdout.replace(str(folder), "OUT"))

    assert report(quiet.stdout, tmp_path / "quiet") == report(done.stdout, tmp_path / "q")
