"""Comparing scored runs: the table, side-by-side heatmaps and exact McNemar tests."""
import json
from math import comb

import pytest
from click.testing import CliRunner

from blender_scenes.labels import AREAS
from blender_scenes.questions import QuestionRecord, write_jsonl
from evaluation.report import compare_runs, mcnemar_exact
from evaluation.score import score_run
from scenes2real.cli import cli
from blender_scenes.errors import InputError

N = 18  # two questions per area


def questions_file(path, prefix="q"):
    records = [QuestionRecord(id=f"{prefix}{i}", image=f"{i}.jpg", task="area9", question="Where is the cat?",
                              options=list(AREAS), answer=AREAS[i % 9]) for i in range(N)]
    write_jsonl(path, [r.model_dump() for r in records])
    return records


def scored_run(run_dir, questions, records, correct_ids, model):
    """A run answering the right area on `correct_ids` and 'center'/'top left' elsewhere."""
    rows = []
    for r in records:
        wrong = "top left" if r.answer == "center" else "center"
        rows.append({"id": r.id, "raw": r.answer if r.id in correct_ids else wrong})
    write_jsonl(run_dir / "predictions.jsonl", rows)
    (run_dir / "run.json").write_text(json.dumps({"model": model, "adapter": None}))
    score_run(run_dir, questions, bootstrap=50)
    return run_dir


def two_sided_binomial(k, n):
    """Exact two-sided p of k successes in n fair trials (symmetric: twice the smaller tail)."""
    tail = sum(comb(n, i) for i in range(0, min(k, n - k) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def test_mcnemar_exact_against_hand_computation():
    a = [True] * 5 + [True] * 1 + [False] * 6 + [False] * 3
    b = [True] * 5 + [False] * 1 + [True] * 6 + [False] * 3
    result = mcnemar_exact(a, b)
    assert (result["only_a_correct"], result["only_b_correct"], result["n"]) == (1, 6, 15)
    assert result["p_value"] == pytest.approx(two_sided_binomial(1, 7))  # = 2 * 8/128 = 0.125
    assert result["p_value"] == pytest.approx(0.125)
    assert mcnemar_exact([True, False], [True, False])["p_value"] == 1.0  # no discordant pair


def test_compare_two_runs_on_the_same_questions(tmp_path):
    questions = tmp_path / "q.jsonl"
    records = questions_file(questions)
    ids = [r.id for r in records]
    # A right on q0..q11 (12), B right on q0..q9 and q12..q15 (14): discordant 2 (A only) vs 4 (B only)
    a = scored_run(tmp_path / "base", questions, records, set(ids[:12]), "tiny-vlm")
    b = scored_run(tmp_path / "tuned", questions, records, set(ids[:10] + ids[12:16]), "tiny-vlm+lora")
    out = tmp_path / "cmp"
    result = compare_runs([a, b], out)

    table = {row["run"]: row for row in result["table"]}
    assert table["base"]["accuracy"] == pytest.approx(12 / 18)
    assert table["tuned"]["accuracy"] == pytest.approx(14 / 18)
    assert table["tuned"]["model"] == "tiny-vlm+lora"
    (test,) = result["mcnemar"]
    assert test["paired"] and (test["only_a_correct"], test["only_b_correct"]) == (2, 4)
    assert test["same_question_file"] is True
    assert test["p_value"] == pytest.approx(two_sided_binomial(2, 6))

    assert json.loads((out / "comparison.json").read_text()) == json.loads(json.dumps(result))
    markdown = (out / "comparison.md").read_text()
    assert "| base | tiny-vlm |" in markdown and "0.667" in markdown and "0.778" in markdown
    assert f"{two_sided_binomial(2, 6):.4g}" in markdown
    assert (out / "heatmaps.png").read_bytes()[:4] == b"\x89PNG"


def test_runs_on_different_questions_are_not_paired(tmp_path):
    q1, q2 = tmp_path / "q1.jsonl", tmp_path / "q2.jsonl"
    r1, r2 = questions_file(q1, "a"), questions_file(q2, "b")
    a = scored_run(tmp_path / "r1", q1, r1, {"a1"}, "m")
    b = scored_run(tmp_path / "r2", q2, r2, {"b1"}, "m")
    (test,) = compare_runs([a, b], tmp_path / "out")["mcnemar"]
    assert test["paired"] is False
    assert "not paired" in (tmp_path / "out" / "comparison.md").read_text()


def test_compare_cli_and_unscored_run(tmp_path):
    questions = tmp_path / "q.jsonl"
    records = questions_file(questions)
    a = scored_run(tmp_path / "a", questions, records, {"q1", "q2"}, "m")
    result = CliRunner().invoke(cli, ["compare", str(a), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "| a | m |" in result.output
    unscored = tmp_path / "unscored"
    unscored.mkdir()
    with pytest.raises(InputError, match="metrics.json: file not found"):
        compare_runs([a, unscored], tmp_path / "out2")
    result = CliRunner().invoke(cli, ["compare", str(a), str(unscored), "--out", str(tmp_path / "out2")])
    assert result.exit_code == 2 and result.output.startswith("error: ")


def relation_questions(path):
    """Four left_right, two above_below and two depth questions (depth options: the names, said in order)."""
    def rec(qid, task, answer, options):
        return QuestionRecord(id=qid, image=f"{qid}.jpg", task=task, question="?", options=options, answer=answer,
                              target={"bbox": [0, 0, 1, 1], "category": "dog"},
                              anchor={"bbox": [5, 5, 1, 1], "category": "cat"}, source="coco")
    records = [rec("l1", "left_right", "left", ["left", "right"]), rec("l2", "left_right", "left", ["right", "left"]),
               rec("l3", "left_right", "right", ["left", "right"]), rec("l4", "left_right", "right", ["left", "right"]),
               rec("a1", "above_below", "above", ["above", "below"]), rec("a2", "above_below", "below", ["below", "above"]),
               rec("d1", "depth", "dog", ["dog", "cat"]), rec("d2", "depth", "dog", ["cat", "dog"])]
    write_jsonl(path, [r.model_dump(exclude_none=True) for r in records])
    return records


def test_relation_runs_are_scored_and_compared(tmp_path):
    questions = tmp_path / "q.jsonl"
    relation_questions(questions)
    raws = {"base": {"l1": "left", "l2": "Left.", "l3": "to the left", "l4": "A", "a1": "over it", "a2": "B",
                     "d1": "the dog", "d2": "A"},
            "tuned": {"l1": "left", "l2": "left", "l3": "right", "l4": "I can't tell", "a1": "above",
                      "a2": "beneath", "d1": "B", "d2": "(b)"}}
    runs = []
    for name, answers in raws.items():
        run_dir = tmp_path / name
        write_jsonl(run_dir / "predictions.jsonl", [{"id": i, "raw": raw} for i, raw in answers.items()])
        (run_dir / "run.json").write_text(json.dumps({"model": name, "adapter": None}))
        metrics = score_run(run_dir, questions, bootstrap=20)
        assert set(metrics["tasks"]) == {"left_right", "above_below", "depth"}
        assert all((run_dir / png).read_bytes()[:4] == b"\x89PNG" for png in metrics["heatmaps"].values())
        runs.append(run_dir)
    base = json.loads((runs[0] / "metrics.json").read_text())["tasks"]
    # base: l1, l2 right; l3 'left' wrong; l4 'A' = left, wrong. Three left answers of four, two true lefts
    assert base["left_right"]["accuracy"] == 0.5 and base["left_right"]["answer_bias"]["predicted"] == 1.0
    assert base["left_right"]["answer_bias"]["true"] == 0.5
    # a2 'B' = above (options below, above): wrong. d1 the dog (first said) right; d2 'A' = cat, wrong
    assert base["above_below"]["accuracy"] == 0.5 and base["depth"]["accuracy"] == 0.5
    assert base["depth"]["answer_bias"] == {"label": "first", "true": 0.5, "predicted": 1.0, "bias": 0.5}
    tuned = json.loads((runs[1] / "metrics.json").read_text())["tasks"]
    assert tuned["left_right"]["accuracy"] == 0.75 and tuned["left_right"]["unparseable"] == 1
    # d1 'B' = the cat (second said), wrong; d2 '(b)' = the dog (second said), right: no first-said choice
    assert tuned["depth"]["accuracy"] == 0.5 and tuned["depth"]["answer_bias"]["bias"] == -0.5

    result = compare_runs(runs, tmp_path / "cmp")
    assert [row["task"] for row in result["table"]] == ["left_right", "above_below", "depth"] * 2
    assert {t["task"] for t in result["mcnemar"]} == {"left_right", "above_below", "depth"}
    markdown = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| left 1.000 / 0.500 |" in markdown and "| first 1.000 / 0.500 |" in markdown
    assert (tmp_path / "cmp" / "heatmaps.png").read_bytes()[:4] == b"\x89PNG"


def test_a_depth_answer_must_be_one_of_its_options(tmp_path):
    questions = tmp_path / "q.jsonl"
    record = QuestionRecord(id="d", image="d.jpg", task="depth", question="?", options=["dog", "cat"],
                            answer="horse")
    write_jsonl(questions, [record.model_dump()])
    write_jsonl(tmp_path / "run" / "predictions.jsonl", [{"id": "d", "raw": "dog"}])
    with pytest.raises(InputError, match="field 'answer': 'horse' is not one of its options"):
        score_run(tmp_path / "run", questions, bootstrap=0)
