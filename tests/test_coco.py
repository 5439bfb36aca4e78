"""Position questions from COCO instances files (fixtures in the shapes real COCO files have)."""
import json
import math
import re
from collections import Counter

import pytest
from click.testing import CliRunner
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from blender_scenes.labels import AREAS, TASKS
from blender_scenes.questions import read_questions
from evaluation.coco import CocoQuestionSettings, coco_questions, write_coco_questions
from scenes2real.cli import cli
from blender_scenes.errors import InputError
from tests.coco_fixtures import (COCO_CATEGORIES, HARD_CASE_EXPECTED, HARD_CASE_IMAGES_WITHOUT_ANNOTATIONS,
                                 annotation, hard_case_instances, image, instances, write_instances,
                                 write_random_instances)


@pytest.fixture
def hard_file(tmp_path):
    return write_instances(tmp_path / "instances_val2017.json", hard_case_instances())


def kept_ids(records):
    return {r.target["annotation_id"] for r in records}


def run_cli(*args):
    return CliRunner().invoke(cli, ["questions", "coco", *map(str, args)])


# -- the fixtures look like real COCO ---------------------------------------------------------------

def test_fixture_has_real_coco_shapes(hard_file):
    coco = COCO(str(hard_file))
    assert len(coco.cats) == 80 and max(coco.cats) == 90 and 12 not in coco.cats
    crowd = coco.anns[1006]
    assert isinstance(crowd["segmentation"]["counts"], list)
    mask = coco.annToMask(crowd)
    x, y, w, h = crowd["bbox"]
    assert mask.shape == (427, 640) and mask.sum() == (int(x + w) + 1 - int(x)) * (int(y + h) + 1 - int(y))
    rle = mask_utils.frPyObjects(crowd["segmentation"], 427, 640)
    assert list(mask_utils.toBbox(rle)) == [450, 300, 151, 101]
    assert coco.annToMask(coco.anns[1001]).sum() > 0  # polygon
    for img_id in HARD_CASE_IMAGES_WITHOUT_ANNOTATIONS:
        assert coco.getAnnIds(imgIds=[img_id]) == []
    assert 999999999999 in coco.imgs


# -- the study's rule -------------------------------------------------------------------------------

def test_default_rule_keeps_unique_categories_with_hand_checked_labels(hard_file):
    records, summary = coco_questions(hard_file)
    expected = {aid: e for aid, e in HARD_CASE_EXPECTED.items() if e["kept"]}
    assert kept_ids(records) == set(expected)
    for r in records:
        aid = r.target["annotation_id"]
        assert r.answer == expected[aid]["area9"], expected[aid]["note"]
        assert r.id == f"coco-{r.target['image_id']}-{aid}-area9"
        assert r.source == "coco" and r.split == "val" and r.task == "area9"
        assert sorted(r.options) == sorted(AREAS) and r.options[r.options.index(r.answer)] == r.answer
    table = next(r for r in records if r.target["annotation_id"] == 1001)
    assert table.question == "Where is the dining table?"
    assert table.image == "000000397133.jpg"
    assert table.target == {"bbox": [100.5, 120.25, 440.0, 200.0], "category": "dining table",
                            "category_id": 67, "annotation_id": 1001, "image_id": 397133, "area": 88000.0,
                            "area_label": "center", "iscrowd": 0, "image_width": 640, "image_height": 427}
    dog = next(r for r in records if r.target["annotation_id"] == 2001)
    assert dog.id == "coco-999999999999-2001-area9"  # 12-digit image id
    assert summary["dropped"]["repeated"] == 4 and summary["targets"] == 7 and summary["images"] == 5


def test_three_way_and_open_tasks_ask_about_the_same_targets(hard_file, tmp_path):
    out = tmp_path / "q.jsonl"
    settings = CocoQuestionSettings(tasks=["area9", "horizontal", "vertical", "open"])
    summary = write_coco_questions(hard_file, out, images="/data/coco/val2017", settings=settings)
    records = read_questions(out)  # validates every line as a QuestionRecord
    assert summary["questions"] == {"area9": 7, "horizontal": 7, "vertical": 7, "open": 7}
    by_task = {task: {r.target["annotation_id"]: r for r in records if r.task == task} for task in TASKS}
    assert all(set(v) == set(by_task["area9"]) for v in by_task.values())
    for aid, r in by_task["area9"].items():
        row, col = divmod(AREAS.index(r.answer), 3)
        assert by_task["horizontal"][aid].answer == ("left", "center", "right")[col]
        assert by_task["vertical"][aid].answer == ("top", "center", "bottom")[row]
        assert sorted(by_task["horizontal"][aid].options) == ["center", "left", "right"]
        assert by_task["open"][aid].options == [] and by_task["open"][aid].answer == r.answer
    assert records[0].image == "/data/coco/val2017/000000397133.jpg"


# -- options ----------------------------------------------------------------------------------------

def test_exclude_crowd(hard_file):
    records, summary = coco_questions(hard_file, CocoQuestionSettings(exclude_crowd=True))
    assert 1006 not in kept_ids(records) and len(records) == 6
    assert summary["dropped"]["crowd"] == 3  # the crowd bottle, and both books (a crowd region of books)


def test_min_area(hard_file):
    records, summary = coco_questions(hard_file, CocoQuestionSettings(min_area=0.001))
    assert kept_ids(records) == {aid for aid, e in HARD_CASE_EXPECTED.items() if e["kept"] and not e.get("small")}
    assert summary["dropped"]["small"] == 1


def test_ambiguity_margin_zero_drops_centres_exactly_on_a_third_line(hard_file):
    records, _ = coco_questions(hard_file, CocoQuestionSettings(ambiguity_margin=0.0))
    assert 2001 not in kept_ids(records) and 2003 in kept_ids(records)


def test_ambiguity_margin(hard_file):
    records, summary = coco_questions(hard_file, CocoQuestionSettings(ambiguity_margin=0.01))
    assert {2001, 2003}.isdisjoint(kept_ids(records)) and 2002 in kept_ids(records)
    assert summary["dropped"]["ambiguous"] == 2
    # the cat's centre is 1/6 of a side from the nearest line: kept up to that margin
    assert 2002 in kept_ids(coco_questions(hard_file, CocoQuestionSettings(ambiguity_margin=0.16))[0])


@pytest.fixture(scope="module")
def random_file(tmp_path_factory):
    return write_random_instances(tmp_path_factory.mktemp("coco") / "instances_train2017.json", 400, 3000, seed=7)


def brute_force_targets(path):
    """The study's rule written independently: scan the raw JSON, no pycocotools, no labels.py."""
    data = json.loads(path.read_text())
    images = {img["id"]: img for img in data["images"]}
    count = Counter((a["image_id"], a["category_id"]) for a in data["annotations"])
    out = {}
    for a in data["annotations"]:
        if count[(a["image_id"], a["category_id"])] == 1:
            img = images[a["image_id"]]
            x, y, w, h = a["bbox"]
            col = min(2, math.floor(3 * (x + w / 2) / img["width"]))
            row = min(2, math.floor(3 * (y + h / 2) / img["height"]))
            out[a["id"]] = ["top", "center", "bottom"][row] + " " + ["left", "center", "right"][col]
    return {k: "center" if v == "center center" else v for k, v in out.items()}


def test_matches_an_independent_implementation_on_a_random_file(random_file):
    records, summary = coco_questions(random_file)
    expected = brute_force_targets(random_file)
    got = {r.target["annotation_id"]: r.answer for r in records}
    assert got == expected and summary["split"] == "train"
    assert summary["dropped"]["repeated"] == 3000 - len(expected)


def test_correct_option_positions_are_balanced(random_file):
    records, _ = coco_questions(random_file, CocoQuestionSettings(tasks=["area9", "horizontal"]))
    for task, k in (("area9", 9), ("horizontal", 3)):
        positions = Counter(r.options.index(r.answer) for r in records if r.task == task)
        assert set(positions) == set(range(k))
        assert max(positions.values()) - min(positions.values()) <= 1


def test_balance_areas_and_limit_are_seeded(random_file, tmp_path):
    records, summary = coco_questions(random_file, CocoQuestionSettings(balance_areas=True, seed=1))
    per_area = Counter(r.answer for r in records)
    assert set(per_area) == set(AREAS) and len(set(per_area.values())) == 1
    assert summary["dropped"]["balance"] == summary["candidates"] - len(records)
    again, _ = coco_questions(random_file, CocoQuestionSettings(balance_areas=True, seed=1))
    assert [r.model_dump() for r in again] == [r.model_dump() for r in records]
    other, _ = coco_questions(random_file, CocoQuestionSettings(balance_areas=True, seed=2))
    assert kept_ids(other) != kept_ids(records)

    everything = kept_ids(coco_questions(random_file)[0])
    limited, summary = coco_questions(random_file, CocoQuestionSettings(limit=50, tasks=["area9", "vertical"]))
    area9, vertical = ({r.target["annotation_id"] for r in limited if r.task == t} for t in ("area9", "vertical"))
    assert len(area9) == 50 and area9 == vertical and area9 <= everything
    assert summary["dropped"]["limit"] == len(everything) - 50


def test_balance_areas_with_an_empty_area_is_an_error(hard_file):
    with pytest.raises(InputError, match="--balance-areas: no target left in area"):
        coco_questions(hard_file, CocoQuestionSettings(balance_areas=True))


# -- the COCO files our renderer writes -------------------------------------------------------------

def rendered_coco():
    shapes = [{"id": i, "name": n, "supercategory": "shape"} for i, n in enumerate(["star", "circle"], 1)]
    imgs = [{"id": 0, "file_name": "images/test/000000.png", "width": 336, "height": 336},
            {"id": 1, "file_name": "images/test/000001.png", "width": 336, "height": 336}]
    def ann(aid, img, cat, bbox, color):
        return {"id": aid, "image_id": img, "category_id": cat, "bbox": bbox, "area": 900, "iscrowd": 0,
                "segmentation": {"size": [336, 336], "counts": "PXb01000"}, "color": color, "size": "large",
                "area_label": None}
    anns = [ann(1, 0, 1, [10, 10, 30, 30], "red"), ann(2, 0, 1, [290, 290, 30, 30], "blue"),
            ann(3, 0, 2, [150, 150, 30, 30], "red"), ann(4, 1, 1, [150, 10, 30, 30], "red")]
    return {"images": imgs, "annotations": anns, "categories": shapes}


def test_rendered_dataset_file_with_attributes(tmp_path):
    path = write_instances(tmp_path / "annotations" / "test.json", rendered_coco())
    by_category, summary = coco_questions(path)
    assert kept_ids(by_category) == {3, 4}  # image 0 has two stars
    assert summary["split"] == "test"
    settings = CocoQuestionSettings(attributes=["color"], source="synthetic")
    records, _ = coco_questions(path, settings)
    questions = {r.target["annotation_id"]: (r.question, r.answer) for r in records}
    assert questions == {1: ("Where is the red star?", "top left"), 2: ("Where is the blue star?", "bottom right"),
                         3: ("Where is the red circle?", "center"), 4: ("Where is the red star?", "top center")}
    assert all(r.source == "synthetic" and r.target["color"] for r in records)
    data = rendered_coco()
    del data["annotations"][0]["color"]
    write_instances(path, data)
    with pytest.raises(InputError, match=r"annotation 1: field 'color'"):
        coco_questions(path, settings)


# -- malformed files: one line, exit 2 --------------------------------------------------------------

def _broken(mutate):
    data = hard_case_instances()
    mutate(data)
    return data


MALFORMED = [
    ("not json", "not valid JSON"),
    ([1, 2, 3], "expected a JSON object"),
    (_broken(lambda d: d.pop("annotations")), "field 'annotations': missing"),
    (_broken(lambda d: d.pop("images")), "field 'images': missing"),
    (_broken(lambda d: d.pop("categories")), "field 'categories': missing"),
    (_broken(lambda d: d.update(annotations={})), "field 'annotations': expected a list"),
    (_broken(lambda d: d["annotations"][2].update(bbox=[1, 2, 3])), r"field 'annotations\[2\].bbox'"),
    (_broken(lambda d: d["annotations"][0].update(bbox=[1, 2, "3", 4])), r"field 'annotations\[0\].bbox'"),
    (_broken(lambda d: d["annotations"][0].update(bbox=None)), r"field 'annotations\[0\].bbox'"),
    (_broken(lambda d: d["annotations"][0].update(bbox=[1, 2, -3, 4])), r"field 'annotations\[0\].bbox'"),
    (_broken(lambda d: d["annotations"][4].update(bbox=[1, 2, float("nan"), 4])), r"field 'annotations\[4\].bbox'"),
    (_broken(lambda d: d["annotations"][4].update(bbox=[1, True, 3, 4])), r"field 'annotations\[4\].bbox'"),
    (_broken(lambda d: d["annotations"][4].update(iscrowd=2)), r"field 'annotations\[4\].iscrowd'"),
    (_broken(lambda d: d["images"][2].update(id="12")), r"field 'images\[2\].id'"),
    # orjson reads an integer of 2**64 or more as a float: refused (one line) rather than mis-read
    (_broken(lambda d: d["images"][2].update(id=2 ** 64)), r"field 'images\[2\].id'"),
    (_broken(lambda d: d["annotations"][1].update(image_id=5)), r"field 'annotations\[1\].image_id'"),
    (_broken(lambda d: d["annotations"][1].update(category_id=12)), r"field 'annotations\[1\].category_id'"),
    (_broken(lambda d: d["annotations"][1].update(id=1001)), r"field 'annotations\[1\].id': expected a unique"),
    (_broken(lambda d: d["images"][1].pop("width")), r"field 'images\[1\].width'"),
    (_broken(lambda d: d["images"][0].update(height=0)), r"field 'images\[0\].height'"),
    (_broken(lambda d: d["categories"][3].pop("name")), r"field 'categories\[3\].name'"),
]


@pytest.mark.parametrize("content, message", MALFORMED)
def test_malformed_file_is_one_line_exit_2(tmp_path, content, message):
    path = tmp_path / "instances_val2017.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    out = tmp_path / "q.jsonl"
    result = run_cli("--instances", path, "--out", out)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {path}: ") and result.output.count("\n") == 1
    assert re.search(message, result.output), result.output
    assert not out.exists()


def test_the_quick_check_passes_good_files_only(random_file):
    """validate_instances first checks whole lists at once; that check must pass every good file (else the
    item by item check runs: slower, the same result) and no malformed one (it would go unreported)."""
    from blender_scenes.cocofile import _passes_at_a_glance

    assert _passes_at_a_glance(hard_case_instances())
    assert _passes_at_a_glance(json.loads(random_file.read_text()))
    for content, _ in MALFORMED:
        assert not _passes_at_a_glance(content)


def test_bad_options_and_missing_file(tmp_path, hard_file):
    result = run_cli("--instances", tmp_path / "nope.json", "--out", tmp_path / "q.jsonl")
    assert result.exit_code == 2 and "file not found" in result.output
    result = run_cli("--instances", hard_file, "--out", tmp_path / "q.jsonl", "--tasks", "area9,colour")
    assert result.exit_code == 2 and "unknown task 'colour'" in result.output
    result = run_cli("--instances", hard_file, "--out", tmp_path / "q.jsonl", "--ambiguity-margin", "0.3")
    assert result.exit_code == 2 and "--ambiguity-margin" in result.output


def test_cli_writes_questions_and_prints_summary(tmp_path, hard_file):
    out = tmp_path / "q.jsonl"
    result = run_cli("--instances", hard_file, "--out", out, "--tasks", "area9,open", "--split", "test",
                     "--exclude-crowd", "--min-area", "0.001", "--seed", "3")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["targets"] == 5 and summary["questions"] == {"area9": 5, "open": 5}
    records = read_questions(out)
    assert {r.split for r in records} == {"test"} and len(records) == 10


def test_big_category_list_and_ids(tmp_path):
    """Twelve-digit ids and a category id at the end of the gapped range survive the round trip."""
    img = image(123456789012, 500, 333)
    ann = annotation(987654321098, img, "toothbrush", [400.25, 10.5, 20.0, 30.0])
    path = write_instances(tmp_path / "instances_val2017.json", instances([img], [ann]))
    (record,), _ = coco_questions(path)
    assert record.id == "coco-123456789012-987654321098-area9" and record.target["category_id"] == 90
    assert record.answer == "top right" and record.question == "Where is the toothbrush?"
    assert COCO_CATEGORIES[-1]["id"] == 90


def test_relative_images_folder_resolves_from_the_question_file(tmp_path, hard_file, monkeypatch):
    from blender_scenes.questions import resolve_image

    photos = tmp_path / "coco" / "val2017"
    photos.mkdir(parents=True)
    (photos / "000000397133.jpg").write_bytes(b"jpeg")
    monkeypatch.chdir(tmp_path / "coco")
    out = tmp_path / "work" / "questions" / "coco_val.jsonl"
    write_coco_questions(hard_file, out, images="val2017")
    record = next(r for r in read_questions(out) if r.target["image_id"] == 397133)
    assert not record.image.startswith("/")
    assert resolve_image(record, out).resolve() == (photos / "000000397133.jpg").resolve()


def test_written_lines_are_json_dumps_of_the_records(random_file, tmp_path):
    """write_coco_questions encodes area lines without building the rows (and shuffles the encoded options
    itself); every byte must be json.dumps(ensure_ascii=False) of the records `coco_questions` builds."""
    from evaluation.coco import select

    for seed in (0, 5):
        settings = CocoQuestionSettings(tasks=["open", "area9", "left_right", "horizontal", "vertical"], seed=seed)
        out = tmp_path / f"q{seed}.jsonl"
        write_coco_questions(random_file, out, images="/data/x", settings=settings)
        rows = select(random_file, settings).rows(settings, "/data/x")
        expected = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        assert out.read_text(encoding="utf-8") == expected


def _set_area(index, value):
    return lambda d: d["annotations"][index].update(area=value)


def _rename(index, name):
    return lambda d: d["categories"][index].update(name=name)


@pytest.mark.parametrize("change", [
    lambda d: None,
    lambda d: d["annotations"][6].update(bbox=[20.0, 30.0, 1.5e-05, 7e-08]),  # floats orjson writes otherwise
    lambda d: d["annotations"][9].update(bbox=[1e16, 2.5e-4, 0.1, 1 / 3]),
    _set_area(0, float("nan")), _set_area(0, float("inf")), _set_area(0, None), _set_area(0, "1,5: x"),
    _set_area(0, [1, {"a": 2}]), _set_area(0, 2**70),
    lambda d: d["annotations"][6].update(id=2**70, area=float("nan")),  # beyond 64 bits (json reads the file: NaN)
    lambda d: d["images"][1].update(width=600.5),
    _rename(0, 'say "a, b: c" {x} [y]'), _rename(1, "back\\slash"), _rename(2, "tab\there"), _rename(3, "é ü \u2028"),
])
def test_targets_are_written_as_json_dumps_writes_them(tmp_path, change):
    """The targets are encoded by orjson where it writes what json.dumps writes, else as json does: every byte
    of the file is json.dumps(ensure_ascii=False) of the records, whatever the numbers and names."""
    from evaluation.coco import select

    data = hard_case_instances()
    change(data)
    path = tmp_path / "instances_val2017.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    settings = CocoQuestionSettings(tasks=["area9", "horizontal", "open", "left_right"])
    write_coco_questions(path, tmp_path / "q.jsonl", settings=settings)
    expected = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in select(path, settings).rows(settings))
    assert (tmp_path / "q.jsonl").read_text(encoding="utf-8") == expected


def test_attributes_with_unusual_characters_are_written_as_json_dumps_writes_them(tmp_path):
    from evaluation.coco import select

    data = rendered_coco()
    data["annotations"][2]["color"] = 'dark, "deep": red'
    path = write_instances(tmp_path / "annotations" / "test.json", data)
    for attributes in (["color"], ["color", "size"]):
        settings = CocoQuestionSettings(tasks=["area9", "vertical"], attributes=attributes, source="synthetic")
        write_coco_questions(path, tmp_path / "q.jsonl", settings=settings)
        rows = select(path, settings).rows(settings)
        assert (tmp_path / "q.jsonl").read_text(encoding="utf-8") == "".join(
            json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


@pytest.mark.parametrize("segmentation", [
    '[[1.5, 2, 3, 4]]', '[ [1,2,3,4] , [5,6,7,8] ]', '[]', '{"counts": [1, 2], "size": [3, 4]}',
    '{"counts": "PXb0[]1:0", "size": [3, 4]}', '[[[1, 2]]]', '[["a[b", 1]]', '[["]"]]', '{"a": {"b": 1}}',
    '"text"', 'null', '[[1, 2], 3]',
])
def test_masks_of_any_shape_leave_the_other_fields_as_parsed(tmp_path, segmentation):
    """Mask values are replaced before parsing by patterns made for COCO's shapes; whatever the value, every
    other field is read as json reads it."""
    from blender_scenes.cocofile import load_instances

    data = hard_case_instances()
    text = json.dumps(data).replace('"segmentation": ', '"segmentation": ' + segmentation + ', "was": ', 1)
    path = tmp_path / "instances_val2017.json"
    path.write_text(text, encoding="utf-8")
    parsed = json.loads(text)
    loaded = load_instances(path).dataset
    for ann in (*parsed["annotations"], *loaded["annotations"]):
        ann.pop("segmentation")
    assert loaded == parsed
