"""vlm_train/export.py and the `export` command: LLaMA-Factory and TRL files hold the shared prompt, the
answer and absolute image paths; bad input writes nothing."""
from __future__ import annotations

import json

from click.testing import CliRunner

from blender_scenes.prompts import build_prompt
from scenes2real.cli import cli
from tests.question_sets import write_question_set, write_relation_set


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_llamafactory_files_and_dataset_info(tmp_path):
    train_file = write_question_set(tmp_path / "demo", "train", ["top left", "center", "bottom right"])
    val_file = write_question_set(tmp_path / "demo", "val", ["center left"])
    out = tmp_path / "lf"
    result = CliRunner().invoke(cli, ["export", str(train_file), str(val_file), "--format", "llamafactory",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "demo_train.json").read_text())
    records = _records(train_file)
    assert len(rows) == 3
    for row, record in zip(rows, records):
        user, assistant = row["messages"]
        assert user == {"role": "user", "content": "<image>" + build_prompt(record["question"], record["options"])}
        assert assistant == {"role": "assistant", "content": record["answer"]}
        assert row["images"] == [str((tmp_path / "demo" / record["image"]).resolve())]
        # one <image> placeholder per image, as LLaMA-Factory checks
        assert user["content"].count("<image>") == len(row["images"]) == 1
    info = json.loads((out / "dataset_info.json").read_text())
    assert set(info) == {"demo_train", "demo_val"}
    assert info["demo_val"]["file_name"] == "demo_val.json" and info["demo_val"]["formatting"] == "sharegpt"
    assert info["demo_train"]["columns"] == {"messages": "messages", "images": "images"}
    assert info["demo_train"]["tags"]["assistant_tag"] == "assistant"


def test_trl_messages_jsonl(tmp_path):
    train_file = write_question_set(tmp_path / "demo", "train", ["top right", "bottom center"])
    out = tmp_path / "trl"
    result = CliRunner().invoke(cli, ["export", str(train_file), "--format", "trl", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = _records(out / "demo_train.jsonl")
    for row, record in zip(rows, _records(train_file), strict=True):
        user, assistant = row["messages"]
        assert user["content"] == [{"type": "image"},
                                   {"type": "text", "text": build_prompt(record["question"], record["options"])}]
        assert assistant == {"role": "assistant", "content": [{"type": "text", "text": record["answer"]}]}
        assert row["images"] == [str((tmp_path / "demo" / record["image"]).resolve())]


def test_missing_image_writes_nothing(tmp_path):
    good = write_question_set(tmp_path / "a", "train", ["center"])
    bad = write_question_set(tmp_path / "b", "train", ["center", "top left"])
    (tmp_path / "b" / "images" / "train" / "0000.png").unlink()
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["export", str(good), str(bad), "--format", "llamafactory", "--out", str(out)])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and "0000.png" in result.output
    assert not out.exists()


def test_a_design_template_reaches_the_exported_training_text(tmp_path):
    """`questions.template` of a design is stored in each record and is what export (and so training and
    evaluation, through the same `record_prompt`) puts before the model."""
    from blender_scenes.batch import run
    from blender_scenes.config import load_preset, parse_design

    demo = load_preset("demo").model_dump(mode="json")
    questions = {**demo["questions"], "template": "Q: {question} Options: {options}. A:",
                 "open_template": "Q: {question} A:"}
    cfg = parse_design({**demo, "image": {"width": 96, "height": 96}, "questions": questions}, "custom.toml")
    run(cfg, tmp_path / "ds", limit=2, splits=["train"], progress=False)
    train_file = tmp_path / "ds" / "questions" / "train.jsonl"
    out = tmp_path / "trl"
    result = CliRunner().invoke(cli, ["export", str(train_file), "--format", "trl", "--out", str(out)])
    assert result.exit_code == 0, result.output
    texts = {r["id"]: r["messages"][0]["content"][1]["text"] for r in _records(out / "ds_train.jsonl")}
    records = {r["id"]: r for r in _records(train_file)}
    assert len(texts) == 8   # 2 scenes x 4 tasks, the open one among them
    for rid, text in texts.items():
        r = records[rid]
        if r["options"]:
            assert text == f"Q: {r['question']} Options: {', '.join(r['options'])}. A:"
        else:
            assert text == f"Q: {r['question']} A:"


def test_relation_records_export_unchanged(tmp_path):
    train_file = write_relation_set(tmp_path / "rel")
    out = tmp_path / "trl"
    result = CliRunner().invoke(cli, ["export", str(train_file), "--format", "trl", "--out", str(out)])
    assert result.exit_code == 0, result.output
    (rows,) = [_records(p) for p in out.glob("*.jsonl")]
    records = _records(train_file)
    assert len(rows) == len(records) == 6 and all("anchor" in r for r in records)
    for row, record in zip(rows, records, strict=True):
        user, assistant = row["messages"]
        assert user["content"][1]["text"] == build_prompt(record["question"], record["options"])
        assert assistant["content"] == [{"type": "text", "text": record["answer"]}]
