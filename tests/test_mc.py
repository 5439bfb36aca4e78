"""The generic multiple-choice task `mc` (a benchmark's own options): how answers are read, how records are
checked, and how runs are scored: accuracy per option position and per benchmark category, and the benchmarks'
own headline scores (CV-Bench's per-source formula, BLINK's mean over sub-tasks)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from blender_scenes.errors import InputError
from blender_scenes.questions import read_questions
from evaluation.parse import parse_answer
from evaluation.score import score_run
from scenes2real.cli import cli

COUNTS = ["3", "2", "1", "0"]
CLOSER = ["A is closer", "B is closer"]
CAPTIONS = ["A beer bottle on a armchair", "A beer bottle under a armchair", "A beer bottle to the left of a armchair"]


@pytest.mark.parametrize("raw, options, expected", [
    ("3", COUNTS, "3"),                        # an option that reads like a marker is that option
    ("(B)", COUNTS, "2"), ("B.", COUNTS, "2"), ("Option 2", COUNTS, "2"), ("answer: d", COUNTS, "0"),
    ("There are 3.", COUNTS, "3"), ("2 or 3", COUNTS, None), ("(E)", COUNTS, None), ("", COUNTS, None),
    ("Yes, it is.", ["true", "false"], "true"), ("no", ["yes", "no"], "no"), ("False.", ["yes", "no"], "no"),
    ("TRUE", ["yes", "no"], "yes"), ("maybe", ["yes", "no"], None), ("I don't know", ["yes", "no"], None),
    ("a beer bottle under a armchair.", CAPTIONS, CAPTIONS[1]),
    ("(A) A is closer", CLOSER, "A is closer"), ("A", CLOSER, "A is closer"), ("B is closer", CLOSER, "B is closer"),
    ("(A) B is closer", CLOSER, None),         # marker and text disagree
])
def test_mc_answers_are_read_by_text_marker_or_polarity(raw, options, expected):
    assert parse_answer(raw, "mc", options) == expected


@pytest.mark.parametrize("options, answer, message", [
    (["yes"], "yes", "field 'options': expected 2 to 10 options"),
    (["yes", "Yes "], "yes", "field 'options': expected different, non-empty options"),
    (["yes", "no"], "maybe", "field 'answer': 'maybe' is not one of its options"),
])
def test_bad_mc_records_are_one_line(tmp_path, options, answer, message):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"id": "1", "image": "x.png", "task": "mc", "question": "Is it?", "options": options,
                                "answer": answer, "source": "vsr"}) + "\n")
    with pytest.raises(InputError, match=f"q.jsonl:1: {message}"):
        read_questions(path)


def _record(i: int, options: list[str], answer: str, name: str, categories: dict) -> dict:
    return {"id": f"{name}-{i}", "image": "img.png", "task": "mc", "question": f"Question {i}?", "options": options,
            "answer": answer, "source": name, "split": "test", "benchmark": {"name": name, "categories": categories}}


def test_a_run_is_scored_per_position_category_and_official_formula(tmp_path):
    records, raws = [], []
    # CV-Bench: ADE20K 2 of 2 right, COCO 1 of 2, Omni3D 0 of 2 -> ((1 + 0.5) / 2 + 0) / 2 = 0.375
    for i, (source, right) in enumerate([("ADE20K", True), ("ADE20K", True), ("COCO", True), ("COCO", False),
                                         ("Omni3D", False), ("Omni3D", False)]):
        records.append(_record(i, COUNTS, "2", "cvbench", {"source": source, "task": "Count"}))
        raws.append("2" if right else "(A)")
    # BLINK: Spatial_Relation 1 of 1, Relative_Depth 0 of 1 (unparseable) -> mean 0.5
    records.append(_record(10, ["yes", "no"], "no", "blink", {"sub_task": "Spatial_Relation"}))
    raws.append("No.")
    records.append(_record(11, CLOSER, "B is closer", "blink", {"sub_task": "Relative_Depth"}))
    raws.append("neither")
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps(r) + "\n" for r in records))
    run = tmp_path / "run"
    run.mkdir()
    (run / "predictions.jsonl").write_text("".join(json.dumps({"id": r["id"], "raw": raw}) + "\n"
                                                   for r, raw in zip(records, raws)))
    metrics = score_run(run, questions, bootstrap=50)
    mc = metrics["tasks"]["mc"]
    assert mc["n"] == 8 and mc["correct"] == 4 and mc["unparseable"] == 1
    assert mc["labels"] == ["A", "B", "C", "D"]                       # up to the most options any record has
    assert mc["distribution"]["true"] == {"A": 0, "B": 8, "C": 0, "D": 0}   # "2", "no", "B is closer": second
    assert mc["answer_bias"]["label"] == "A" and mc["distribution"]["predicted"]["A"] == 3
    cvbench, blink = metrics["benchmarks"]["cvbench"], metrics["benchmarks"]["blink"]
    assert cvbench["categories"]["source"]["COCO"] == {"n": 2, "correct": 1, "accuracy": 0.5}
    assert cvbench["official"]["value"] == pytest.approx(0.375)
    assert blink["official"]["value"] == pytest.approx(0.5) and blink["accuracy"] == 0.5
    assert (run / "heatmap_mc.png").is_file()
    result = CliRunner().invoke(cli, ["score", str(run), "--questions", str(questions), "--bootstrap", "20"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["benchmarks"]["cvbench"]["official"]["value"] == pytest.approx(0.375)


def test_cvbench_without_every_source_has_no_official_score(tmp_path):
    records = [_record(0, COUNTS, "3", "cvbench", {"source": "COCO"})]
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps(records[0]) + "\n")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "predictions.jsonl").write_text(json.dumps({"id": "cvbench-0", "raw": "3"}) + "\n")
    official = score_run(tmp_path / "run", questions, bootstrap=10)["benchmarks"]["cvbench"]["official"]
    assert official["value"] is None and "Omni3D" in official["why"]


def test_mc_questions_run_through_evaluate_and_compare(tmp_path, tiny_checkpoint):
    from PIL import Image

    Image.new("RGB", (64, 48), (200, 30, 30)).save(tmp_path / "img.png")
    records = [_record(i, opts, opts[i % len(opts)], "whatsup", {"subset": "controlled_images"})
               for i, opts in enumerate([COUNTS, CAPTIONS, ["yes", "no"], CLOSER])]
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps(r) + "\n" for r in records))
    model = tiny_checkpoint("qwen2_5_vl")
    for name in ("a", "b"):
        result = CliRunner().invoke(cli, ["evaluate", "--model", str(model), "--questions", str(questions), "--out",
                                          str(tmp_path / name), "--max-new-tokens", "4"])
        assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["tasks"]["mc"]["n"] == 4 and metrics["benchmarks"]["whatsup"]["n"] == 4
    result = CliRunner().invoke(cli, ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out",
                                      str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output
    table = Path(tmp_path / "cmp" / "comparison.md").read_text()
    assert "| mc |" in table and "| whatsup | subset | controlled_images | 4 |" in table
