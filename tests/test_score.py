"""score_run on small hand-made run directories (the format shared with the model runner)."""
import json

import pytest
from click.testing import CliRunner

from blender_scenes.labels import LABELS
from blender_scenes.questions import QuestionRecord, write_jsonl
from evaluation.score import prediction_row, score_run
from scenes2real.cli import cli
from blender_scenes.errors import InputError


def record(qid, task, answer, options=None):
    return QuestionRecord(id=qid, image=f"{qid}.jpg", task=task, question="Where is the dog?",
                          options=list(LABELS[task]) if options is None else options, answer=answer,
                          source="coco", split="val")


# area9 options in the order the letter answers refer to: A = top left ... I = bottom right
QUESTIONS = [
    record("q1", "area9", "top left"),
    record("q2", "area9", "top left"),
    record("q3", "area9", "center"),
    record("q4", "area9", "center"),
    record("q5", "area9", "bottom right"),
    record("q6", "area9", "center left"),
    record("h1", "horizontal", "left"),
    record("h2", "horizontal", "right"),
    record("h3", "horizontal", "center"),
]
# raw answers, with stale parsed/correct fields that re-scoring must overwrite
RAW = {
    "q1": "Top-left corner.",                   # top left, correct
    "q2": "the middle",                         # center, wrong
    "q3": "E",                                  # option 5 = center, correct
    "q4": "I can't tell.",                      # unparseable, wrong
    "q5": "lower right",                        # bottom right, correct
    "q6": "center",                             # center, wrong (center left)
    "h1": "top left",                           # left, correct
    "h2": "left",                               # wrong
    "h3": None,                                 # the model produced nothing: unparseable
}


@pytest.fixture
def run(tmp_path):
    questions = tmp_path / "questions.jsonl"
    write_jsonl(questions, [r.model_dump() for r in QUESTIONS])
    run_dir = tmp_path / "run"
    rows = [{"id": qid, "task": "area9", "raw": raw, "parsed": "top left", "answer": "x", "correct": True,
             "seconds": 0.5} for qid, raw in RAW.items()]
    write_jsonl(run_dir / "predictions.jsonl", rows)
    (run_dir / "run.json").write_text(json.dumps({"model": "tiny-vlm", "adapter": None}))
    return run_dir, questions


def test_score_rewrites_predictions_and_computes_metrics(run):
    run_dir, questions = run
    metrics = score_run(run_dir, questions, bootstrap=100)
    rows = {r["id"]: r for r in map(json.loads, (run_dir / "predictions.jsonl").read_text().splitlines())}
    assert rows["q1"]["parsed"] == "top left" and rows["q1"]["correct"] is True
    assert rows["q2"]["parsed"] == "center" and rows["q2"]["correct"] is False
    assert rows["q3"]["parsed"] == "center" and rows["q3"]["correct"] is True
    assert rows["q4"]["parsed"] is None and rows["q4"]["correct"] is False
    assert rows["h1"]["task"] == "horizontal" and rows["h1"]["parsed"] == "left"
    assert rows["h3"]["parsed"] is None and rows["h3"]["raw"] is None
    assert rows["q5"]["answer"] == "bottom right" and rows["q5"]["seconds"] == 0.5  # runner fields kept

    on_disk = json.loads((run_dir / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    assert metrics["n_predictions"] == 9 and metrics["missing"] == 0
    assert metrics["correct"] == 4 and metrics["accuracy"] == pytest.approx(4 / 9)
    assert metrics["unparseable"] == 2
    assert {e["id"] for e in metrics["unparseable_examples"]} == {"q4", "h3"}
    assert metrics["run"] == {"model": "tiny-vlm", "adapter": None}

    area9 = metrics["tasks"]["area9"]
    assert area9["n"] == 6 and area9["accuracy"] == pytest.approx(3 / 6)
    assert area9["unparseable_rate"] == pytest.approx(1 / 6)
    # F1 = 2TP/(support+predicted): top left 2/(2+1), center 2/(2+3), bottom right 2/2, center left 0/1
    assert area9["macro_f1"] == pytest.approx((2 / 3 + 2 / 5 + 1 + 0) / 4)
    assert area9["center_share"]["predicted"] == pytest.approx(3 / 6)
    assert area9["center_share"]["true"] == pytest.approx(2 / 6)
    horizontal = metrics["tasks"]["horizontal"]
    assert horizontal["accuracy"] == pytest.approx(1 / 3) and horizontal["unparseable"] == 1
    assert horizontal["accuracy_grid"] == [[1.0, 0.0, 0.0]]
    for task in ("area9", "horizontal"):
        png = run_dir / metrics["heatmaps"][task]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_score_is_repeatable(run):
    run_dir, questions = run
    first = score_run(run_dir, questions, bootstrap=100, seed=5)
    predictions = (run_dir / "predictions.jsonl").read_text()
    second = score_run(run_dir, questions, bootstrap=100, seed=5)
    assert first == second and (run_dir / "predictions.jsonl").read_text() == predictions


def test_partial_run_counts_missing_questions(run):
    run_dir, questions = run
    lines = (run_dir / "predictions.jsonl").read_text().splitlines()
    (run_dir / "predictions.jsonl").write_text("\n".join(lines[:4]) + "\n")
    metrics = score_run(run_dir, questions, bootstrap=0)
    assert metrics["n_predictions"] == 4 and metrics["missing"] == 5
    assert set(metrics["tasks"]) == {"area9"}


def test_unknown_prediction_id_is_a_clear_error(run):
    run_dir, questions = run
    with (run_dir / "predictions.jsonl").open("a") as fh:
        fh.write(json.dumps({"id": "zzz", "raw": "top left"}) + "\n")
    before = (run_dir / "predictions.jsonl").read_text()
    with pytest.raises(InputError, match=r"predictions.jsonl: field 'id': 'zzz' is not a question of"):
        score_run(run_dir, questions)
    assert (run_dir / "predictions.jsonl").read_text() == before  # nothing rewritten
    assert not (run_dir / "metrics.json").exists()
    result = CliRunner().invoke(cli, ["score", str(run_dir), "--questions", str(questions)])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and "'zzz'" in result.output
    assert result.output.count("\n") == 1


@pytest.mark.parametrize("line, message", [
    ('{"id": "q1", "raw": "top"}\n{"id": "q1", "raw": "top"}', "appears twice"),
    ('{"raw": "top"}', "field 'id'"),
    ('{"id": "q1"}', "field 'raw'"),
    ('{"id": "q1", "raw": 3}', "field 'raw'"),
    ("not json", "not valid JSON"),
])
def test_malformed_predictions(run, line, message):
    run_dir, questions = run
    (run_dir / "predictions.jsonl").write_text(line + "\n")
    with pytest.raises(InputError, match=message):
        score_run(run_dir, questions)


def test_missing_predictions_file(tmp_path, run):
    _, questions = run
    with pytest.raises(InputError, match="predictions.jsonl: file not found"):
        score_run(tmp_path / "nowhere", questions)


def test_prediction_row_for_the_runner():
    rec = record("x", "vertical", "bottom", options=["top", "bottom", "center"])
    assert prediction_row(rec, "B") == {"id": "x", "task": "vertical", "raw": "B", "parsed": "bottom",
                                        "answer": "bottom", "correct": True}
    assert prediction_row(rec, "no idea", seconds=1.5)["parsed"] is None


def test_score_cli_prints_summary(run):
    run_dir, questions = run
    result = CliRunner().invoke(cli, ["score", str(run_dir), "--questions", str(questions), "--bootstrap", "50"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["accuracy"] == pytest.approx(4 / 9) and summary["tasks"]["area9"]["n"] == 6


def test_three_way_tasks_get_accuracy_per_true_area(tmp_path):
    """Horizontal questions whose targets carry their nine-way area: accuracy per area, worked by hand."""
    specs = [("top left", "left"), ("bottom left", "left"), ("bottom left", "left"), ("center", "center"),
             ("top right", "right")]
    records = [QuestionRecord(id=f"h{i}", image="x.jpg", task="horizontal", question="Where is the dog?",
                              options=["left", "center", "right"], answer=answer,
                              target={"area_label": area})
               for i, (area, answer) in enumerate(specs)]
    questions = tmp_path / "q.jsonl"
    write_jsonl(questions, [r.model_dump() for r in records])
    raws = ["left", "left", "center", "middle", "left"]  # right, right, wrong, right, wrong
    write_jsonl(tmp_path / "run" / "predictions.jsonl", [{"id": f"h{i}", "raw": r} for i, r in enumerate(raws)])
    horizontal = score_run(tmp_path / "run", questions, bootstrap=0)["tasks"]["horizontal"]
    assert horizontal["accuracy_by_area9"]["top left"] == 1.0
    assert horizontal["accuracy_by_area9"]["bottom left"] == 0.5
    assert horizontal["accuracy_by_area9"]["top right"] == 0.0
    assert horizontal["support_by_area9"]["bottom left"] == 2
    assert horizontal["accuracy_grid_area9"] == [[1.0, None, 0.0], [None, 1.0, None], [0.5, None, None]]
    assert horizontal["accuracy_grid"] == [[pytest.approx(2 / 3), 1.0, 0.0]]


def test_bad_run_json_is_an_input_error(run):
    run_dir, questions = run
    (run_dir / "run.json").write_text("{not json")
    with pytest.raises(InputError, match="run.json: not valid JSON"):
        score_run(run_dir, questions)


def test_question_answer_outside_the_task_is_an_input_error(tmp_path, run):
    run_dir, _ = run
    questions = tmp_path / "bad.jsonl"
    write_jsonl(questions, [record("q1", "horizontal", "top left").model_dump()])
    with pytest.raises(InputError, match=r"field 'answer': 'top left' is not a label of task 'horizontal'"):
        score_run(run_dir, questions)
