"""Validation errors in plain words (blender_scenes/messages.py): each broken input, through the real command
line, gives exactly one line naming the file, the field, what was expected and what was given (with the
closest known key or value), exit status 2, and writes nothing."""
import json
from importlib import resources

import pytest
from click.testing import CliRunner
from pydantic import TypeAdapter, ValidationError

from blender_scenes.messages import json_position, option_error
from scenes2real.cli import cli

DEMO = (resources.files("blender_scenes.presets") / "demo.toml").read_text(encoding="utf-8")
RECORD = {"id": "q1", "image": "images/a.png", "task": "area9", "question": "Where is the red star?",
          "options": ["top left", "center"], "answer": "center"}


def demo(old: str, new: str) -> str:
    assert old in DEMO
    return DEMO.replace(old, new)


CONFIGS = [   # (design text, the message after "error: d.toml: ")
    (demo("red = [255, 0, 0]", "red = [255, 0]"),   # colour too short
     "field 'factors.colors.red': expected [R, G, B], three integers 0-255, got [255, 0]"),
    (demo("red = [255, 0, 0]", 'red = "red"'),   # colour a string
     "field 'factors.colors.red': expected [R, G, B], three integers 0-255, got 'red'"),
    (demo("red = [255, 0, 0]", "red = [300, 0, 0]"),   # colour out of range
     "field 'factors.colors.red': expected [R, G, B], three integers 0-255, got [300, 0, 0]"),
    (demo("[factors.colors]", "[factors.colours]"),   # misspelt table: its required key is missing too
     "field 'factors.colours': unknown key (did you mean 'colors'?)"),
    (demo("width = 192", "widht = 192"), "field 'image.widht': unknown key (did you mean 'width'?)"),
    (demo("width = 192", "width = 192\nzoom = 2"), "field 'image.zoom': unknown key"),
    (demo("width = 192", 'width = "wide"'), "field 'image.width': expected an integer from 16 to 8192, got 'wide'"),
    (demo('engine = "workbench"', 'engine = "cycels"'),
     "field 'render.engine': expected 'workbench', 'cycles' or 'eevee', got 'cycels' (did you mean 'cycles'?)"),
    (demo('engine = "workbench"', 'engine = "povray"'),
     "field 'render.engine': expected 'workbench', 'cycles' or 'eevee', got 'povray'"),
    (demo("samples = 8", "samples = 0"), "field 'render.samples': expected an integer from 1 to 4096, got 0"),
    (demo("train = 0.6", "trian = 0.6"), "field 'splits.fractions.trian': unknown key (did you mean 'train'?)"),
    (DEMO + "[[design.subsets]]\nname = 'a'\nsplit = 'trian'\n",
     "field 'design.subsets[0].split': expected a split ('train', 'val' or 'test') or a table of fractions by "
     "split, got 'trian' (did you mean 'train'?)"),
    (DEMO + "[[design.subsets]]\nname = 'a'\nsplit = { train = inf, val = 0.5 }\n",
     "field 'design.subsets[0].split.train': expected a finite number, got inf"),
    (demo('tasks = ["area9", ', 'tasks = ["Area9", '),
     "field 'questions.tasks[0]': expected 'area9', 'horizontal', 'vertical', 'open', 'left_right', 'above_below' "
     "or 'depth', got 'Area9' (did you mean 'area9'?)"),
    (demo('shapes = ["square", "circle", "triangle"]', "shapes = []"),
     "field 'factors.shapes': expected a non-empty list of strings, got []"),
    (demo('name = "demo"', ""), "field 'name': missing (expected a string)"),
    (demo("[image]\nwidth = 192\nheight = 192", "image = 3"), "field 'image': expected a table, got 3"),
    (demo("rows = 9", "rows = 8"),   # our own validator's words stay as they are
     "field 'grid': rows and cols must be multiples of 3 (each area is a block of cells)"),
]


def refused(tmp_path, monkeypatch, args: list[str]) -> str:
    """The command's whole output, checked to be one error line with exit 2 and no file written."""
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    return result.output.strip()


@pytest.mark.parametrize("text, message", CONFIGS)
def test_design_errors_in_plain_words(tmp_path, monkeypatch, text, message):
    (tmp_path / "d.toml").write_text(text, encoding="utf-8")
    assert refused(tmp_path, monkeypatch, ["plan", "d.toml"]) == f"error: d.toml: {message}"


LINES = [   # (the second line of a question file, the message after "error: q.jsonl:2")
    ('{"id": "q2", "image": "a.png" "task": "area9"}',   # the column of the file, 1-based
     ":31: not valid JSON (expected ',' or '}'): expected a question record, one JSON object per line"),
    ('{"id": "é", "imagé": "a.png" "task": "area9"}',   # counted in characters, not bytes
     ":30: not valid JSON (expected ',' or '}'): expected a question record, one JSON object per line"),
    ('{"id": "q2", "image": "a.png"',   # cut short: just after its last character
     ":30: not valid JSON (ended inside an object): expected a question record, one JSON object per line"),
    ('{"id": "q2", "image": tru}', ":23: not valid JSON (expected true, false or null): expected a question "
     "record, one JSON object per line"),
    (json.dumps({**{k: v for k, v in RECORD.items() if k != "question"}, "questoin": "Where?"}),
     ": field 'questoin': unknown key (did you mean 'question'?)"),
    (json.dumps({**RECORD, "task": "area8"}), ": field 'task': expected 'area9', 'horizontal', 'vertical', 'open', "
     "'left_right', 'above_below', 'depth' or 'mc', got 'area8' (did you mean 'area9'?)"),
    (json.dumps({k: v for k, v in RECORD.items() if k != "answer"}), ": field 'answer': missing (expected a string)"),
    (json.dumps({**RECORD, "options": "center"}), ": field 'options': expected a list of strings, got 'center'"),
    (json.dumps({**RECORD, "target": [1, 2]}), ": field 'target': expected an object, got [1, 2]"),
    ("[1, 2]", ": expected a question record (one JSON object per line), got [1, 2]"),
]


@pytest.mark.parametrize("line, message", LINES)
def test_question_file_errors_in_plain_words(tmp_path, monkeypatch, line, message):
    (tmp_path / "q.jsonl").write_text(json.dumps(RECORD) + "\n" + line + "\n", encoding="utf-8")
    assert refused(tmp_path, monkeypatch, ["audit", "q.jsonl"]) == f"error: q.jsonl:2{message}"


@pytest.mark.parametrize("entry, message", [
    ('builtin = "cube"\ncolour = false', "field 'assets.cup.colour': unknown key (did you mean 'colourable'?)"),
    ('file = "cup.obj"\nup = "z"',
     "field 'assets.cup.up': expected 'Z', 'Y', 'X', '-Z', '-Y' or '-X', got 'z' (did you mean 'Z'?)"),
    ('builtin = "cube"\ncolourable = "maybe"', "field 'assets.cup.colourable': expected true or false, got 'maybe'"),
])
def test_asset_manifest_errors_in_plain_words(tmp_path, monkeypatch, entry, message):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "manifest.toml").write_text(f"[assets.cup]\n{entry}\n", encoding="utf-8")
    (tmp_path / "d.toml").write_text(DEMO, encoding="utf-8")
    output = refused(tmp_path, monkeypatch, ["plan", "d.toml", "--assets", "lib"])
    assert output == f"error: {(tmp_path / 'lib' / 'manifest.toml').resolve()}: {message}"


@pytest.mark.parametrize("options, message", [
    ({"lora_r": 0}, "--lora-r: expected an integer of at least 1, got 0"),
    ({"lr": 0}, "--lr: expected a number greater than 0, got 0"),
    ({"dtype": "fp16"}, "--dtype: expected 'auto', 'bf16' or 'fp32', got 'fp16' (did you mean 'bf16'?)"),
    ({"warmup": 1.5}, "--warmup: expected a whole number of steps, or a fraction of all steps below 1 (got 1.5)"),
])
def test_train_options_in_plain_words(options, message):
    from vlm_train.train import TrainConfig

    with pytest.raises(ValidationError) as err:
        TrainConfig(model="m", train="t.jsonl", out="o", **options)
    assert option_error(err.value, TrainConfig) == message


@pytest.mark.parametrize("text, position", [
    ('{"naïve": 1,\n "é": 2 "x": 3}', (2, 9, "expected ',' or '}'")),   # the parser counts bytes: 10
    ('{"a": [1,\n', (1, 10, "ended inside a value")),   # the parser says line 2 column 0
    ('{"a":\n  nul}', (2, 3, "expected true, false or null")),   # the parser says column 6, after `nul`
])
def test_json_position_in_characters_of_the_text(text, position):
    with pytest.raises(ValidationError) as err:
        TypeAdapter(dict).validate_json(text)
    assert json_position(text, err.value.errors()[0]["ctx"]["error"]) == position
