"""Hostile input (issue 20, findings 6, 7 and 9): every case is one `error:` line and exit status 2 from the real
command, nothing written, or (boxes outside their image) dropped and counted. Cases the fuzzing found are kept
here as plain tests (tests/test_fuzz.py holds the properties)."""
from __future__ import annotations

import json

import pytest

from blender_scenes.config import MAX_SCENES, load_design, parse_design
from blender_scenes.errors import InputError
from blender_scenes.prompts import record_prompt
from blender_scenes.questions import read_questions
from evaluation.coco import CocoQuestionSettings, coco_questions, outside_image
from tests.coco_fixtures import annotation, image, instances, write_instances
from tests.processes import cli
from tests.question_sets import write_question_set

GOOD = """
name = "tiny"
[factors]
shapes = ["square", "circle"]
sizes = { large = 0.8 }
[factors.colors]
red = [255, 0, 0]
"""


def refused(*args: str) -> str:
    """Run `scenes2real ARGS`; assert exit status 2 and one `error:` line (no traceback); that line."""
    proc = cli(*args)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 2, out
    assert out.startswith("error: ") and out.count("\n") == 1 and "Traceback" not in out, out
    return out.strip()


def design(tmp_path, text: str, name: str = "d.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- finding 6: prompt templates ------------------------------------------------------------------------

def test_a_design_template_with_an_unknown_placeholder_is_refused_by_plan(tmp_path):
    path = design(tmp_path, GOOD + '[questions]\ntemplate = "{question} Choose from [{options}]. {hint}"\n')
    line = refused("plan", path)
    assert line == (f"error: {path}: field 'questions.template': unknown placeholder '{{hint}}'; expected only "
                    "{question} and {options} (a literal brace written {{ or }})")


@pytest.mark.parametrize("key, template, words", [
    ("template", "{question} Choose { from [{options}].", "malformed braces"),
    ("template", "{question} Choose from [{options}]. }", "malformed braces"),
    ("template", "{question!r} [{options}]", "unknown placeholder '{question!r}'"),
    ("template", "{question:>40} [{options}]", "unknown placeholder '{question:>40}'"),
    ("template", "{question.upper} [{options}]", "unknown placeholder '{question.upper}'"),
    ("template", "{} [{options}]", "unknown placeholder '{}'"),
    ("template", "{question} Choose from [options].", "must contain {question} and {options}"),
    ("template", "{{question}} [{options}]", "must contain {question} and {options}"),   # a literal, not a field
    ("open_template", "{question} from [{options}]", "unknown placeholder '{options}'; expected only {question}"),
    ("open_template", "Where? {", "malformed braces"),
])
def test_bad_templates_name_the_field_and_the_placeholders(tmp_path, key, template, words):
    path = design(tmp_path, GOOD + f"[questions]\n{key} = {json.dumps(template)}\n")
    with pytest.raises(InputError) as err:
        load_design(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: field 'questions.{key}': ") and words in msg and "\n" not in msg, msg


def test_literal_braces_are_allowed_and_kept(tmp_path):
    path = design(tmp_path, GOOD + '[questions]\ntemplate = "{{json}} {question} [{options}]"\n')
    assert load_design(path).questions.template == "{{json}} {question} [{options}]"


def _question_file(tmp_path, **changes):
    path = write_question_set(tmp_path / "civet", "val", ["center", "top left"])
    rows = [{**json.loads(line), **changes} for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_record_template_is_checked_when_read_before_any_model_loads(tmp_path):
    """export, train and evaluate failed with a KeyError traceback (evaluate after loading the model, leaving
    run.json at status running); now the question file is refused when read, before anything else."""
    path = _question_file(tmp_path, template="{question} {hint} [{options}]")
    expected = (f"error: {path}:1: field 'template': unknown placeholder '{{hint}}'; expected only {{question}} and "
                "{options} (a literal brace written {{ or }})")
    assert refused("export", path, "--format", "llamafactory", "--out", tmp_path / "x") == expected
    assert refused("evaluate", "--model", tmp_path / "no-model", "--questions", path, "--out", tmp_path / "run") \
        == expected
    assert refused("train", "--model", tmp_path / "no-model", "--train", path, "--out", tmp_path / "t") == expected
    assert not (tmp_path / "x").exists() and not (tmp_path / "run").exists() and not (tmp_path / "t").exists()


@pytest.mark.parametrize("changes, words", [
    ({"template": "{question} [{options]"}, "malformed braces"),
    ({"template": "{question}"}, "must contain {question} and {options}"),
    ({"template": "{question} {options}", "options": []}, "unknown placeholder '{options}'; expected only {question}"),
])
def test_record_templates_the_prompt_builder_cannot_fill(tmp_path, changes, words):
    path = _question_file(tmp_path, **changes)
    with pytest.raises(InputError, match=r"val.jsonl:1: field 'template': ") as err:
        read_questions(path)
    assert words in str(err.value)


def test_a_record_template_that_passes_builds_its_prompt(tmp_path):
    path = _question_file(tmp_path, template="Q: {{x}} {question} [{options}]")
    record = read_questions(path)[0]
    assert record_prompt(record) == f"Q: {{x}} {record.question} [{', '.join(record.options)}]"


def test_a_question_file_that_is_not_utf8_names_its_line(tmp_path):
    path = _question_file(tmp_path)
    path.write_bytes(path.read_bytes().replace(b"red square", b"r\xffd square", 2))
    assert refused("export", path, "--format", "trl", "--out", tmp_path / "x") == (
        f"error: {path}:1: not UTF-8 text (expected a question record, one JSON object per line)")


# -- finding 7: numbers in COCO files -------------------------------------------------------------------

def _coco(tmp_path, images, anns, name="instances_val2017.json"):
    return write_instances(tmp_path / name, instances(images, anns))


def test_a_huge_box_is_refused(tmp_path):
    img = image(1, 640, 480)
    path = _coco(tmp_path, [img], [annotation(1, img, "dog", [1e308, 10, 1e308, 50])])
    assert refused("questions", "coco", "--instances", path, "--out", tmp_path / "q.jsonl") == (
        f"error: {path}: field 'annotations[0].bbox': expected 4 finite numbers [x, y, w, h] with w, h >= 0, "
        "each in -1e18..1e18, got [1e+308, 10, 1e+308, 50]")
    assert not (tmp_path / "q.jsonl").exists()


def test_a_huge_image_side_is_refused(tmp_path):
    img = image(1, 640, 480)
    path = _coco(tmp_path, [img], [annotation(1, img, "dog", [10, 10, 50, 50])])
    path.write_text(path.read_text().replace('"width": 640', '"width": 1' + "0" * 400))
    line = refused("questions", "coco", "--instances", path, "--out", tmp_path / "q.jsonl")
    assert line.startswith(f"error: {path}: field 'images[0].width': expected a number of pixels in 1..1000000, "
                           "got 1000"), line


@pytest.mark.parametrize("side", [0, 0.5, -640, 1_000_001, True, "640", None])
def test_image_sides_out_of_range(tmp_path, side):
    img = {**image(1, 640, 480), "height": side}
    path = _coco(tmp_path, [img], [annotation(1, image(1, 640, 480), "dog", [10, 10, 50, 50])])
    with pytest.raises(InputError, match=r"field 'images\[0\].height': expected a number of pixels in 1..1000000"):
        coco_questions(path)


def test_boxes_outside_their_image_are_dropped_and_counted(tmp_path):
    """A box with no pixel in its image was labelled `top left` (its clamped centre); it is dropped, counted in
    the summary as `outside`, and is no repeat of another object of its category."""
    img = image(1, 640, 480)
    anns = [annotation(1, img, "dog", [-500.0, -400.0, 100.0, 100.0]),    # wholly above and left
            annotation(2, img, "dog", [500.0, 300.0, 50.0, 50.0]),        # the one dog left: a target
            annotation(3, img, "cat", [640.0, 10.0, 20.0, 20.0]),         # starts at the right border
            annotation(4, img, "cup", [-20.0, -20.0, 40.0, 40.0]),        # partly inside: kept, top left
            annotation(5, img, "bird", [0.0, 480.0, 0.0, 0.0])]           # a point on the border: kept
    path = _coco(tmp_path, [img], anns)
    records, summary = coco_questions(path, CocoQuestionSettings(tasks=["area9"]))
    assert summary["dropped"]["outside"] == 2 and summary["dropped"]["repeated"] == 0
    assert {r.target["annotation_id"]: r.answer for r in records} == {2: "bottom right", 4: "top left",
                                                                      5: "bottom left"}
    proc = cli("questions", "coco", "--instances", path, "--out", tmp_path / "q.jsonl")
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0 and json.JSONDecoder().raw_decode(out)[0]["dropped"]["outside"] == 2, out


@pytest.mark.parametrize("bbox, outside", [
    ([0, 0, 10, 10], False), ([-10, -10, 10, 10], True), ([-10, 5, 10.5, 1], False), ([100, 0, 1, 1], True),
    ([99.5, 0, 1, 1], False), ([100, 50, 0, 0], False), ([100.5, 50, 0, 0], True), ([5, -1, 0, 0], True),
])
def test_outside_image(bbox, outside):
    assert outside_image(bbox, 100, 50) is outside


@pytest.mark.parametrize("content, words", [
    ('{"images": [], "annotations": [], "categories": [' + "[" * 5000 + "]" * 5000 + "]}", "not valid JSON"),
    ('{"images": [{"id": 1' + "0" * 5000 + '}], "annotations": [], "categories": []}', "not valid JSON"),
])
def test_json_python_cannot_read_is_one_line(tmp_path, content, words):
    """Found by fuzzing: json raised RecursionError (deep nesting) and ValueError (an int of over 4300 digits)."""
    path = tmp_path / "instances_val2017.json"
    path.write_text(content)
    with pytest.raises(InputError, match=words):
        coco_questions(path)


def test_an_unhashable_id_reference_is_one_line(tmp_path):
    """Found by fuzzing: `[1] in set_of_ids` raised TypeError."""
    img = image(1, 640, 480)
    ann = {**annotation(1, img, "dog", [10, 10, 50, 50]), "image_id": [1]}
    with pytest.raises(InputError, match=r"field 'annotations\[0\].image_id'"):
        coco_questions(_coco(tmp_path, [img], [ann]))


# -- finding 7: numbers in design configs ---------------------------------------------------------------

@pytest.mark.parametrize("extra, field, words", [
    ("[grid]\nrows = 9999\ncols = 9999\n", "grid.rows", "expected an integer from 3 to 99, got 9999"),
    ("[grid]\nrows = 9999\ncols = 9\n", "grid.rows", "expected an integer from 3 to 99, got 9999"),
    ("[grid]\nrows = 99\ncols = 9\n", "grid.rows", "cells of at least 4 px"),
    ("[image]\nwidth = 16\n", "grid.cols", "cells of at least 4 px"),
    ("[image]\nwidth = 9000\n", "image.width", "expected an integer from 16 to 8192"),
    ("[render]\nsamples = 0\n", "render.samples", "expected an integer from 1 to 4096, got 0"),
    ("[design]\nrepeat = 1001\n", "design.repeat", "expected an integer from 1 to 1000"),
    ("[design]\nrepeat = 1000\n[distractors]\nvariations = 100\n", "design", f"at most {MAX_SCENES}"),
    ("[design]\nkind = 'balanced'\nscenes = 1000001\n", "design.scenes", "expected an integer from 1 to 1000000"),
    ("[design]\nkind = 'balanced'\nscenes = 900000\n[distractors]\ncount = 5\n", "distractors.count",
     "objects planned; expected at most 4000000"),
    ("[distractors]\nvariations = 101\n", "distractors.variations", "expected an integer from 1 to 100"),
    ("[grid]\nrows = 3\ncols = 3\n[distractors]\ncount = 9\n", "distractors.count", "expected count <= 8"),
    ("[splits]\nfractions = { train = nan, val = 0.2 }\n", "splits.fractions.train", "finite number"),
    ("[[design.subsets]]\nname = 'a'\nsplit = { train = inf, val = 0.5 }\n", "design.subsets[0].split.train",
     "finite number"),
    ("[camera]\nazimuth = inf\n", "camera.azimuth", "finite number"),
    ("seed = -9223372036854775808\n", "seed", "expected an integer from -9223372036854775807 to"),
    ("[render]\nmargin_px = 100000\n", "render.margin_px", "expected an integer from 0 to 1024"),
    ("[questions]\ntasks = ['left_right']\n[grid]\nrows = 21\ncols = 21\n", "grid", "at most 324"),
])
def test_config_bounds_name_the_field(tmp_path, extra, field, words):
    text = GOOD.replace('name = "tiny"', 'name = "tiny"\n' + extra) if extra.startswith("seed") else GOOD + extra
    path = design(tmp_path, text)
    with pytest.raises(InputError) as err:
        load_design(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: field '{field}': ") and words in msg and "\n" not in msg, msg


@pytest.mark.parametrize("sizes, words", [
    ("{ large = 1.5 }", "a flat size is a share of a cell; expected at most 1"),
    ("{ large = 0.05 }", "expected objects of at least 3 px"),
    ("{ large = inf }", "finite number"),
    ("{ large = 0 }", "expected a positive number"),
])
def test_flat_sizes(tmp_path, sizes, words):
    with pytest.raises(InputError, match="field 'factors.sizes") as err:
        load_design(design(tmp_path, GOOD.replace("{ large = 0.8 }", sizes)))
    assert words in str(err.value)


def test_grid_bounds_through_plan(tmp_path):
    """`rows = cols = 9999` ran `plan` into MemoryError; `rows = 9999, cols = 9` failed in render ("rendered in
    None")."""
    path = design(tmp_path, GOOD + "[grid]\nrows = 9999\ncols = 9\n")
    assert refused("plan", path) == (f"error: {path}: field 'grid.rows': expected an integer from 3 to 99, got 9999")


def test_too_many_combinations(tmp_path):
    colors = "".join(f"c{i} = [0, 0, {i % 256}]\n" for i in range(500))
    sizes = "{" + ", ".join(f"s{i} = 0.5" for i in range(101)) + "}"
    text = GOOD.replace("[factors.colors]\nred = [255, 0, 0]\n", "[factors.colors]\n" + colors)
    with pytest.raises(InputError, match="field 'factors': 101000 combinations"):
        load_design(design(tmp_path, text.replace("{ large = 0.8 }", sizes)))


def test_yaml_values_python_cannot_hold(tmp_path):
    """Found by fuzzing: a YAML integer of over 4300 digits (ValueError), a seed beyond 64 bits, a name with
    a line break (an error message of two lines), an `assets` that is no path (TypeError)."""
    base = "name: tiny\nfactors: {shapes: [square], sizes: {large: 0.8}, colors: {red: [255, 0, 0]}}\n"
    cases = [("seed: 1" + "0" * 5000 + "\n", "not valid YAML"), ("seed: 1" + "0" * 30 + "\n", "field 'seed'"),
             ("assets: [1, 2]\n", "field 'assets': expected the path of an asset folder"),
             ("render: {engine: \"po\\nvray\"}\n", r"got 'po\nvray'")]
    for extra, words in cases:
        with pytest.raises(InputError) as err:
            load_design(design(tmp_path, base + extra, "d.yaml"))
        assert words in str(err.value) and "\n" not in str(err.value), str(err.value)
    with pytest.raises(InputError) as err:
        parse_design({"name": "x", "factors": {"shapes": ["square"], "sizes": {"large": 0.8},
                                              "colors": {"re\nd": [1, 2, 3]}},
                      "design": {"subsets": [{"name": "a", "colors": ["blue"]}]}}, "dict")
    assert "\n" not in str(err.value) and r"re\nd" in str(err.value)


def test_a_design_that_is_not_utf8(tmp_path):
    path = tmp_path / "d.toml"
    path.write_bytes(GOOD.replace("tiny", "t\xffny").encode("latin-1"))
    assert refused("plan", path) == f"error: {path}: not UTF-8 text (invalid start byte); expected a TOML design config"


# -- finding 9: export collisions -----------------------------------------------------------------------

def test_export_refuses_two_inputs_with_one_output_name(tmp_path):
    """A/questions/val.jsonl and B/questions/val.jsonl of two dataset folders both called `civet` were both
    written to civet_val.json (the first file's records lost, exit 0)."""
    a = write_question_set(tmp_path / "A" / "civet", "val", ["center"])
    b = write_question_set(tmp_path / "B" / "civet", "val", ["top left"])
    out = tmp_path / "X"
    assert refused("export", a, b, "--format", "llamafactory", "--out", out) == (
        f"error: {a} and {b}: both export as 'civet_val' into {out} (the dataset folder's name and the file's stem); "
        "expected one file per name: rename a dataset folder or export them into separate --out folders")
    assert not out.exists()
    assert "both export as 'civet_val'" in refused("export", a, a, "--format", "trl", "--out", out)
    c = write_question_set(tmp_path / "C" / "CIVET", "val", ["center"])   # one file where case is ignored
    assert "both export as 'CIVET_val'" in refused("export", a, c, "--format", "trl", "--out", out)
    assert not out.exists()


def test_export_refuses_a_dataset_info_that_is_no_object(tmp_path):
    a = write_question_set(tmp_path / "civet", "val", ["center"])
    out = tmp_path / "X"
    out.mkdir()
    (out / "dataset_info.json").write_text("[1, 2]")
    assert refused("export", a, "--format", "llamafactory", "--out", out) == (
        f"error: {out / 'dataset_info.json'}: expected a JSON object of datasets (LLaMA-Factory's "
        "dataset_info.json), got a list")
    assert sorted(p.name for p in out.iterdir()) == ["dataset_info.json"]
