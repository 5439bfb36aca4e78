"""Property-based tests of the readers (issue 20): the design config loader, the COCO reader, the question-file
reader and the answer parser. Every generated input either works or is refused by one `InputError` of one line;
the parser turns any text into a label or None. The inputs Hypothesis found breaking a reader are kept as
explicit cases in tests/test_hostile_input.py.

Deterministic and bounded: the `scenes2real-fuzz` profile derandomizes (the same examples on every run, so CI
never fails by chance) and each test has a fixed number of examples; the file runs in well under a minute on a
busy two-core machine. SCENES2REAL_FUZZ_SCALE=10 runs ten times as many examples, and the `scenes2real-hunt`
profile (SCENES2REAL_FUZZ_PROFILE) draws new ones on every run: a longer local hunt."""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from blender_scenes.config import load_design, parse_design
from blender_scenes.errors import InputError
from blender_scenes.labels import ALL_TASKS, LABELS
from blender_scenes.plan import plan
from blender_scenes.prompts import build_prompt, record_prompt, template_problem
from blender_scenes.questions import read_questions
from evaluation.coco import CocoQuestionSettings, coco_questions
from evaluation.parse import parse_answer
from tests.coco_fixtures import hard_case_instances
from tests.processes import cli

settings.register_profile("scenes2real-fuzz", derandomize=True, deadline=None, database=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                 HealthCheck.filter_too_much])
# a longer hunt with new examples on every run: SCENES2REAL_FUZZ_PROFILE=scenes2real-hunt SCENES2REAL_FUZZ_SCALE=10
settings.register_profile("scenes2real-hunt", settings.get_profile("scenes2real-fuzz"), derandomize=False)
PROFILE = settings.get_profile(os.environ.get("SCENES2REAL_FUZZ_PROFILE", "scenes2real-fuzz"))
SCALE = float(os.environ.get("SCENES2REAL_FUZZ_SCALE", "1"))


def fuzz(examples: int):
    return settings(PROFILE, max_examples=max(1, int(examples * SCALE)))


# A scratch folder for the files of every example (tmp_path is per test, not per example).
SCRATCH = Path(tempfile.mkdtemp(prefix="scenes2real-fuzz-"))


@pytest.fixture(scope="module", autouse=True)
def _remove_scratch():
    yield
    shutil.rmtree(SCRATCH, ignore_errors=True)

LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"


def assert_one_line(err: InputError) -> None:
    msg = str(err)
    assert msg and not any(c in msg for c in LINE_BREAKS), repr(msg)


# -- values --------------------------------------------------------------------------------------------------

NUMBERS = st.one_of(
    st.integers(-20, 120), st.integers(), st.integers(-10**600, 10**600),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 3, 9, 16, 99, 100, 10**6, 10**20, 2**63, -1, 0.5, 1e-300, 1e308, -1e308,
                     math.inf, -math.inf, math.nan]))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=12),
                    st.sampled_from(["", "square", "red", "flat", "3d", "balanced", "exhaustive", "train",
                                     "area9", "left_right", "{question}", "{", "re\nd"]))
JUNK = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                   st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                    max_leaves=12)


def mutate(base, mutations):
    """`base` (a JSON-like tree) with each (path of choices, value or None = delete) applied: a path walks into
    existing containers by index or key (modulo their size), or adds a key."""
    data = json.loads(json.dumps(base))
    for steps, value in mutations:
        node = data
        for k, step in enumerate(steps):
            last = k == len(steps) - 1
            if isinstance(node, dict):
                keys = sorted(node, key=str)
                key = keys[step % len(keys)] if keys and isinstance(step, int) else str(step)
                if last or not isinstance(node.get(key), (dict, list)):
                    if value is None:
                        node.pop(key, None)
                    else:
                        node[key] = value
                    break
                node = node[key]
            elif isinstance(node, list) and node:
                i = step % len(node) if isinstance(step, int) else 0
                if last or not isinstance(node[i], (dict, list)):
                    if value is None:
                        node.pop(i)
                    else:
                        node[i] = value
                    break
                node = node[i]
            else:
                break
    return data


MUTATIONS = st.lists(st.tuples(st.lists(st.one_of(st.integers(0, 40), st.text(max_size=6)), min_size=1, max_size=4),
                               st.one_of(st.none(), JUNK)), max_size=4)


# -- the design config loader ------------------------------------------------------------------------------

GOOD_DESIGN = {"name": "fuzz", "image": {"width": 96, "height": 96}, "grid": {"rows": 3, "cols": 3},
               "factors": {"shapes": ["square", "circle"], "sizes": {"large": 0.8, "small": 0.5},
                           "colors": {"red": [255, 0, 0], "blue": [0, 0, 255]}},
               "design": {"kind": "exhaustive", "repeat": 1},
               "distractors": {"count": 1, "variations": 1},
               "splits": {"fractions": {"train": 0.5, "val": 0.5}},
               "questions": {"tasks": ["area9"], "template": "{question} [{options}]"}}
RELATION_DESIGN = {**GOOD_DESIGN, "grid": {"rows": 9, "cols": 9}, "image": {"width": 64, "height": 64},
                   "questions": {"tasks": ["left_right", "above_below"]}}
SOLID_DESIGN = {**GOOD_DESIGN, "render": {"style": "3d", "engine": "workbench"},
                "factors": {"shapes": ["cube", "sphere"], "sizes": {"large": 0.9}, "colors": {"red": [255, 0, 0]},
                            "materials": {"rubber": {"metallic": 0.0, "roughness": 0.9}}},
                "grid": {"rows": 9, "cols": 9}, "distractors": {"count": 0},
                "questions": {"tasks": ["depth"], "describe": ["material", "shape"]}}
# the keys a design has, so mutations hit real fields as often as junk ones
KEYS = [("image", "width"), ("image", "height"), ("grid", "rows"), ("grid", "cols"), ("render", "samples"),
        ("render", "style"), ("render", "margin_px"), ("design", "kind"), ("design", "repeat"), ("design", "scenes"),
        ("distractors", "count"), ("distractors", "variations"), ("factors", "sizes", "large"),
        ("factors", "colors", "red"), ("factors", "shapes"), ("splits", "fractions", "train"), ("seed",),
        ("questions", "tasks"), ("questions", "template"), ("questions", "open_template"), ("camera", "distance"),
        ("splits", "heldout"), ("design", "subsets"), ("assets",), ("name",), ("questions", "depth_margin"),
        ("factors", "materials"), ("questions", "describe"), ("render", "min_visible"), ("camera", "elevation")]
FIELD_MUTATIONS = st.lists(st.tuples(st.sampled_from(KEYS), st.one_of(st.none(), NUMBERS, SCALARS, JUNK)), max_size=3)


def set_field(data: dict, path: tuple, value) -> None:
    node = data
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    if value is None:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value


def small(cfg) -> bool:
    """A design planned in well under a second (the fuzz plans every small design it accepts)."""
    f = cfg.factors
    combinations = len(f.shapes) * len(f.colors) * len(f.sizes) * max(1, len(f.materials))
    per_combination = 2 * len(cfg.questions.tasks) if cfg.relations else cfg.grid.rows * cfg.grid.cols
    scenes = cfg.design.scenes if cfg.design.kind == "balanced" else combinations * per_combination * cfg.design.repeat
    return scenes * cfg.distractors.variations <= 5000 and cfg.grid.rows * cfg.grid.cols <= 144


def check_design(data) -> None:
    try:
        cfg = parse_design(data, "fuzz.toml")
    except InputError as err:
        assert_one_line(err)
        event("refused")
        return
    event("accepted")
    if small(cfg):
        try:
            plan(cfg)
            event("planned")
        except InputError as err:   # a design the planner cannot balance: refused in one line
            assert_one_line(err)
            event("refused by plan")


@fuzz(600)
@given(FIELD_MUTATIONS, MUTATIONS, st.sampled_from([GOOD_DESIGN, RELATION_DESIGN, SOLID_DESIGN]))
@example([(("grid", "rows"), 9999), (("grid", "cols"), 9999)], [], GOOD_DESIGN)
@example([(("grid", "rows"), 3), (("distractors", "count"), 9)], [], GOOD_DESIGN)
@example([(("splits", "fractions", "train"), math.nan)], [], GOOD_DESIGN)
@example([(("assets",), [1])], [], GOOD_DESIGN)
@example([(("questions", "template"), "{question} {hint} [{options}]")], [], GOOD_DESIGN)
@example([(("questions", "open_template"), "{")], [], GOOD_DESIGN)
@example([(("seed",), 10**30)], [], GOOD_DESIGN)
@example([(("factors", "sizes", "large"), 1e-9)], [], GOOD_DESIGN)
def test_design_dicts(fields, mutations, base):
    data = json.loads(json.dumps(base))
    for path, value in fields:
        set_field(data, path, value)
    check_design(mutate(data, mutations) if mutations else data)


TOML_VALUES = st.sampled_from(["nan", "inf", "-inf", "1e400", "99999999999999999999", "0", "-1", "9999", "''",
                               '"x"', "[1, 2]", "{ a = 1 }", "true", "1979-05-27", '"{question} {"', "[[1]]"])
GOOD_TOML = """name = "fuzz"
[image]
width = 96
height = 96
[grid]
rows = 3
cols = 3
[factors]
shapes = ["square", "circle"]
sizes = { large = 0.8 }
[factors.colors]
red = [255, 0, 0]
"""


@fuzz(120)
@given(st.lists(st.tuples(st.integers(0, 14), st.sampled_from(KEYS), TOML_VALUES), max_size=4),
       st.text(max_size=40), st.booleans())
def test_design_text_toml(edits, noise, with_noise):
    lines = GOOD_TOML.splitlines()
    for at, key, value in edits:   # a key = value line inserted at a line boundary (often a duplicate or junk)
        lines.insert(at % (len(lines) + 1), f"{key[-1]} = {value}")
    text = "\n".join(lines) + "\n" + (noise if with_noise else "")
    path = SCRATCH / "d.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_design(path)
        event("accepted")
    except InputError as err:
        assert_one_line(err)
        event("refused")


YAML_VALUES = st.sampled_from([".nan", ".inf", "-.inf", "1" + "0" * 5000, "0x1F", "~", "[1, [2, [3]]]", "{a: 1}",
                               "!!binary aGVsbG8=", "2001-12-14", "*a", "&a 3", "'re\nd'", '"po\\nvray"', "yes",
                               "[" * 200 + "]" * 200])


@fuzz(120)
@given(st.lists(st.tuples(st.sampled_from(KEYS), YAML_VALUES), max_size=4), st.binary(max_size=30), st.booleans())
@example([], b"\xff\xfe", True)
def test_design_text_yaml(edits, noise, with_noise):
    data = json.loads(json.dumps(GOOD_DESIGN))
    text = json.dumps(data)   # JSON is YAML
    for key, value in edits:
        text += f"\n{key[0]}: {value}" if len(key) == 1 else f"\n{key[0]}: {{{key[1]}: {value}}}"
    path = SCRATCH / "d.yaml"
    path.write_bytes(text.encode() + (noise if with_noise else b""))
    try:
        load_design(path)
        event("accepted")
    except InputError as err:
        assert_one_line(err)
        event("refused")


# -- prompt templates --------------------------------------------------------------------------------------

TEMPLATES = st.lists(st.sampled_from(["{", "}", "{{", "}}", "{question}", "{options}", "{hint}", "x", "!r", ":",
                                      "{0}", "{}", "[", "]", "{question!s}", "{options:>3}", "{question.x}"]),
                     max_size=8).map("".join)


@fuzz(300)
@given(TEMPLATES | st.text(max_size=20), st.booleans())
def test_a_template_passes_exactly_when_the_prompt_builder_can_fill_it(template, with_options):
    problem = template_problem(template, with_options)
    options = ["top left", "center"] if with_options else []
    if problem is None:
        prompt = build_prompt("Where is it?", options, template, template)
        assert "Where is it?" in prompt and (not with_options or "top left, center" in prompt)
    else:
        assert not any(c in problem for c in LINE_BREAKS)


# -- the question-file reader ------------------------------------------------------------------------------

GOOD_RECORD = {"id": "q1", "image": "images/val/0.png", "task": "area9", "question": "Where is the red square?",
               "options": ["top left", "center"], "answer": "center", "target": {"bbox": [1, 2, 3, 4]},
               "source": "synthetic", "split": "val"}
RECORD_KEYS = ["id", "image", "task", "question", "options", "answer", "target", "source", "split", "template",
               "anchor"]


@st.composite
def question_lines(draw) -> bytes:
    kind = draw(st.integers(0, 4))
    if kind == 0:   # a record with fields changed
        record = dict(GOOD_RECORD)
        for key, value in draw(st.lists(st.tuples(st.sampled_from(RECORD_KEYS),
                                                  st.one_of(st.none(), JUNK, TEMPLATES)), max_size=3)):
            if value is None:
                record.pop(key, None)
            else:
                record[key] = value
        return json.dumps(record).encode()
    if kind == 1:   # any JSON value
        return json.dumps(draw(JUNK)).encode()
    if kind == 2:
        return draw(st.text(max_size=40)).encode("utf-8", "surrogatepass")
    if kind == 3:
        return draw(st.binary(max_size=40)).replace(b"\n", b" ")
    return json.dumps(GOOD_RECORD).encode()


@fuzz(400)
@given(st.lists(question_lines(), max_size=5))
@example([json.dumps({**GOOD_RECORD, "template": "{question} {hint} [{options}]"}).encode()])
@example([json.dumps({**GOOD_RECORD, "options": [], "template": "{question} {options}"}).encode()])
@example([b'{"id": "a\xff"}'])
def test_question_files(lines):
    path = SCRATCH / "questions.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    try:
        records = read_questions(path)
    except InputError as err:
        assert_one_line(err)
        event("refused")
        return
    event("accepted")
    for record in records:   # whatever the reader passes, the prompt builder can fill
        record_prompt(record)


# -- the COCO reader -------------------------------------------------------------------------------------

GOOD_COCO = hard_case_instances()
COCO_SETTINGS = st.builds(CocoQuestionSettings,
                          tasks=st.sampled_from([["area9"], ["left_right", "above_below"], ["horizontal", "open"]]),
                          exclude_crowd=st.booleans(), min_area=st.sampled_from([None, 0.001]),
                          ambiguity_margin=st.sampled_from([None, 0.05]), balance_areas=st.just(False),
                          attributes=st.sampled_from([[], ["color"]]), limit=st.sampled_from([None, 3]))
# where in a COCO file a mutation lands: a top-level key, or a field of an image, annotation or category
COCO_PLACES = st.tuples(st.sampled_from(["images", "annotations", "categories"]), st.integers(0, 100),
                        st.sampled_from(["id", "width", "height", "file_name", "bbox", "image_id", "category_id",
                                         "iscrowd", "area", "name", "color", "segmentation"]))
BOXES = st.lists(NUMBERS, min_size=0, max_size=5)


@st.composite
def coco_texts(draw) -> bytes:
    data = json.loads(json.dumps(GOOD_COCO))
    for (key, index, field), value in draw(st.lists(st.tuples(COCO_PLACES, st.one_of(st.none(), JUNK, BOXES, NUMBERS)),
                                                    max_size=3)):
        items = data[key]
        item = items[index % len(items)]
        if value is None:
            item.pop(field, None)
        else:
            item[field] = value
    data = mutate(data, draw(st.lists(st.tuples(st.lists(st.integers(0, 40), min_size=1, max_size=3),
                                                st.one_of(st.none(), JUNK)), max_size=2)))
    text = json.dumps(data).encode()
    cut = draw(st.one_of(st.none(), st.integers(0, len(text))))
    if cut is not None:   # a truncated file, or bytes that are not UTF-8
        text = text[:cut] + draw(st.binary(max_size=4))
    return text


@fuzz(500)
@given(coco_texts(), COCO_SETTINGS)
@example(json.dumps({**GOOD_COCO, "annotations": [{**GOOD_COCO["annotations"][0], "bbox": [1e308, 10, 1e308, 50]}]})
         .encode(), CocoQuestionSettings())
@example(json.dumps(GOOD_COCO).replace('"width": 640', '"width": 1' + "0" * 400).encode(), CocoQuestionSettings())
@example(json.dumps({**GOOD_COCO, "annotations": [{**GOOD_COCO["annotations"][0], "image_id": [1]}]}).encode(),
         CocoQuestionSettings())
def test_coco_files(text, coco_settings):
    path = SCRATCH / "instances_val2017.json"
    path.write_bytes(text)
    try:
        records, summary = coco_questions(path, coco_settings)
    except InputError as err:
        assert_one_line(err)
        event("refused")
        return
    event("accepted")
    assert summary["targets"] <= summary["annotations"]


# -- the answer parser -----------------------------------------------------------------------------------

OPTION_TEXT = st.one_of(st.text(max_size=15), st.sampled_from(["top left", "left", "above", "dog", "hot dog", "B"]))


@fuzz(1000)
@given(st.text(max_size=80) | st.lists(st.sampled_from(["top", "left", "B", ")", "option", "not", "right", "in", "the",
                                                      "middle", "2", ".", " ", "dog", "٣", "İ", "\u2028"]),
                                     max_size=10).map(" ".join),
       st.sampled_from(ALL_TASKS), st.one_of(st.none(), st.lists(OPTION_TEXT, max_size=9)))
@example("٣", "area9", ["top left", "center", "bottom right"])
def test_the_parser_reads_any_text(text, task, options):
    label = parse_answer(text, task, options)
    if task in ("depth", "mc"):   # the record's own options
        assert label is None or label in (options or [])
    else:
        assert label is None or label in LABELS[task]


# -- a few through the real command line -------------------------------------------------------------------

@pytest.mark.parametrize("args, content, name", [
    (("plan",), "name = 'x'\n[factors]\nshapes = ['square']\nsizes = { l = nan }\n[factors.colors]\nr = [1,2,3]\n",
     "d.toml"),
    (("plan",), b"name: [\xff", "d.yaml"),
    (("questions", "coco", "--out", "{tmp}/q.jsonl", "--instances"),
     json.dumps({**GOOD_COCO, "images": [{**GOOD_COCO["images"][0], "width": 1e300}]}), "instances_val2017.json"),
    (("export", "--format", "trl", "--out", "{tmp}/x"), b'{"id": 1}\n\xff\n', "questions.jsonl"),
])
def test_the_command_line_refuses_in_one_line(tmp_path, args, content, name):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    proc = cli(*[a.format(tmp=tmp_path) for a in args], path)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 2 and out.startswith("error: ") and out.count("\n") == 1, out
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
