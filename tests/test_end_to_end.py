"""The whole loop on this machine: render the demo preset -> position questions from its COCO file ->
evaluate two tiny models of a real architecture -> compare the runs (McNemar on the same questions)."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from blender_scenes.questions import read_questions
from scenes2real.cli import cli

pytestmark = pytest.mark.bpy


def invoke(*args: str) -> str:
    res = CliRunner().invoke(cli, list(args))
    assert res.exit_code == 0, res.output
    return res.output


def test_render_questions_evaluate_compare(demo_dataset, tiny_checkpoint, tmp_path):
    questions = tmp_path / "test_questions.jsonl"
    invoke("questions", "coco", "--instances", str(demo_dataset / "annotations" / "test.json"),
           "--images", str(demo_dataset), "--out", str(questions), "--attributes", "color",
           "--source", "synthetic")
    records = read_questions(questions)
    ours = {(r.image, r.answer) for r in read_questions(demo_dataset / "questions" / "test.jsonl")
            if r.task == "area9"}
    # every object is uniquely described in the demo (target + 1 distractor per scene), so the COCO rule
    # asks about all 22; the renderer's own 11 target questions and answers are among them
    assert len(records) == 22
    assert {(img.removeprefix("images/"), a) for img, a in ours} <= \
        {(r.image.split("/images/")[-1], r.answer) for r in records}

    runs = []
    for family in ("qwen2_5_vl", "idefics3"):
        run_dir = tmp_path / f"run-{family}"
        invoke("evaluate", "--model", str(tiny_checkpoint(family)), "--questions", str(questions),
               "--out", str(run_dir), "--batch-size", "4", "--max-new-tokens", "6", "--device", "cpu")
        rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
        assert sorted(r["id"] for r in rows) == sorted(r.id for r in records)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics["tasks"]["area9"]["n"] == 22
        runs.append(run_dir)

    out = tmp_path / "compare"
    invoke("compare", *map(str, runs), "--out", str(out))
    comparison = json.loads((out / "comparison.json").read_text())
    assert (out / "heatmaps.png").stat().st_size > 1000
    assert len(comparison["mcnemar"]) == 1
