"""Relation questions from COCO instances files: pairs of unique objects, answers worked out by hand."""
import json
from collections import Counter

import pytest
from click.testing import CliRunner

from blender_scenes.errors import InputError
from blender_scenes.questions import QuestionRecord, read_questions
from evaluation.coco import COCO_TASKS, CocoQuestionSettings, coco_questions, write_coco_questions
from scenes2real.cli import cli
from scenes2real.cli.evaluation import COCO_TASK_NAMES
from tests.coco_fixtures import (
    annotation,
    hard_case_instances,
    image,
    instances,
    write_instances,
    write_random_instances,
)

# hard_case_instances(), by hand. Candidates (unique category, not crowd): image 397133: dining table 1001
# x 100.5..540.5, y 120.25..320.25 and cup 1007 x 20..32.5, y 30..40.25 (the persons and books are repeated,
# the bottle is only a crowd region: an area target but never one side of a pair). Image 999999999999: dog 2001
# x 150..250, y 20..80; cat 2002 x 520..580, y 220..280; horse 2003 x 100..291, y 80..221. Image 100000000001
# has one object: no pair. Target = the smaller annotation id.
EXPECTED = {
    "coco-397133-1001-1007-left_right": "right",          # cup ends at 32.5 <= 100.5
    "coco-397133-1001-1007-above_below": "below",         # cup ends at 40.25 <= 120.25
    "coco-999999999999-2001-2002-left_right": "left",     # 250 <= 520
    "coco-999999999999-2001-2002-above_below": "above",   # 80 <= 220
    # 2001-2003 left_right: x-intervals overlap (150..250 in 100..291): not asked
    "coco-999999999999-2001-2003-above_below": "above",   # dog ends at 80 = horse's top: touching is separated
    "coco-999999999999-2002-2003-left_right": "right",    # horse ends at 291 <= 520
    # 2002-2003 above_below: 220..280 overlaps 80..221: not asked
}
RELATIONS = ["left_right", "above_below"]


@pytest.fixture
def hard_file(tmp_path):
    return write_instances(tmp_path / "instances_val2017.json", hard_case_instances())


@pytest.fixture(scope="module")
def random_file(tmp_path_factory):
    return write_random_instances(tmp_path_factory.mktemp("coco") / "instances_train2017.json", 400, 3000, seed=7)


def run_cli(*args):
    return CliRunner().invoke(cli, ["questions", "coco", *map(str, args)])


def test_relation_questions_match_hand_computed_answers(hard_file):
    records, summary = coco_questions(hard_file, CocoQuestionSettings(tasks=RELATIONS))
    assert {r.id: r.answer for r in records} == EXPECTED
    assert [r.id for r in records] == [i for t in RELATIONS for i in EXPECTED if i.endswith(t)]
    assert summary["questions"] == {"left_right": 3, "above_below": 3}
    relations = summary["relations"]
    assert relations["candidates"] == 5 and relations["pairs"] == 4
    assert relations["tasks"]["left_right"]["dropped"]["unanswered"] == 1
    assert relations["tasks"]["above_below"]["answers"] == {"above": 2, "below": 1}
    table = records[0]
    assert table.question == "Where is the dining table relative to the cup?"
    assert table.anchor == {"bbox": [20.0, 30.0, 12.5, 10.25], "category": "cup", "category_id": 47,
                            "annotation_id": 1007, "image_id": 397133, "area": 128.125, "area_label": "top left",
                            "iscrowd": 0, "image_width": 640, "image_height": 427}
    assert table.target["annotation_id"] == 1001 and set(table.target) == set(table.anchor)
    for r in records:
        assert sorted(r.options) == sorted(("left", "right") if r.task == "left_right" else ("above", "below"))
        assert r.source == "coco" and r.split == "val" and r.image.endswith(".jpg")


def test_a_crowd_region_counts_toward_its_category_and_is_never_paired(tmp_path):
    img = image(5, 600, 400)
    anns = [annotation(1, img, "dog", [10, 10, 50, 50]), annotation(2, img, "cat", [300, 10, 50, 50]),
            annotation(3, img, "cat", [400, 200, 100, 100], iscrowd=1),      # cat: repeated by its crowd region
            annotation(4, img, "kite", [500, 300, 50, 50]), annotation(5, img, "bird", [200, 300, 60, 60],
                                                                        iscrowd=1)]  # only a crowd region
    path = write_instances(tmp_path / "instances_val2017.json", instances([img], anns))
    records, _ = coco_questions(path, CocoQuestionSettings(tasks=["area9", "left_right"]))
    by_task = {t: {r.id: r.answer for r in records if r.task == t} for t in ("area9", "left_right")}
    assert by_task["left_right"] == {"coco-5-1-4-left_right": "left"}
    assert set(by_task["area9"]) == {"coco-5-1-area9", "coco-5-4-area9", "coco-5-5-area9"}  # the study's rule
    records, _ = coco_questions(path, CocoQuestionSettings(tasks=["left_right"], exclude_crowd=True))
    assert [r.id for r in records] == ["coco-5-1-4-left_right"]


def test_filters_act_on_targets_and_anchors(hard_file):
    # the cup (0.05% of the image) is an anchor here: with --min-area its pair goes too
    records, _ = coco_questions(hard_file, CocoQuestionSettings(tasks=RELATIONS, min_area=0.001))
    assert {r.id for r in records} == {i for i in EXPECTED if "1007" not in i}
    # --ambiguity-margin is about third lines: area targets only (the dog's centre is on one)
    records, _ = coco_questions(hard_file, CocoQuestionSettings(tasks=RELATIONS, ambiguity_margin=0.01))
    assert {r.id for r in records} == set(EXPECTED)


def test_mixed_tasks_count_per_task(hard_file, tmp_path):
    out = tmp_path / "q.jsonl"
    summary = write_coco_questions(hard_file, out, settings=CocoQuestionSettings(tasks=["area9", "left_right"]))
    assert summary["questions"] == {"area9": 7, "left_right": 3} and summary["targets"] == 7
    records = read_questions(out)  # every line validates as a QuestionRecord
    assert [r.task for r in records] == ["area9"] * 7 + ["left_right"] * 3
    assert all((r.anchor is None) == (r.task == "area9") for r in records)


def test_area_records_have_no_anchor_key_and_keep_their_bytes(hard_file, tmp_path):
    out = tmp_path / "q.jsonl"
    write_coco_questions(hard_file, out, images="/data/x",
                         settings=CocoQuestionSettings(tasks=["area9", "horizontal", "above_below"]))
    lines = out.read_text().splitlines()
    # the first line exactly as the builder wrote it before relations existed
    assert lines[0] == (
        '{"id": "coco-397133-1001-area9", "image": "/data/x/000000397133.jpg", "task": "area9", "question": '
        '"Where is the dining table?", "options": ["center", "top left", "top center", "center left", '
        '"top right", "center right", "bottom right", "bottom center", "bottom left"], "answer": "center", '
        '"target": {"bbox": [100.5, 120.25, 440.0, 200.0], "category": "dining table", "category_id": 67, '
        '"annotation_id": 1001, "image_id": 397133, "area": 88000.0, "area_label": "center", "iscrowd": 0, '
        '"image_width": 640, "image_height": 427}, "source": "coco", "split": "val"}')
    for line in lines:  # the written dicts are what the pydantic model dumps, key order included
        record = QuestionRecord.model_validate_json(line)
        exclude = {"template", "anchor"} if record.anchor is None else {"template"}
        assert json.dumps(record.model_dump(exclude=exclude), ensure_ascii=False) == line
        assert ('"anchor"' in line) == (record.task == "above_below")


def test_balance_answers_and_limit_keep_equal_counts(random_file):
    settings = CocoQuestionSettings(tasks=RELATIONS, balance_answers=True, seed=4)
    records, summary = coco_questions(random_file, settings)
    for task in RELATIONS:
        counts = Counter(r.answer for r in records if r.task == task)
        assert len(counts) == 2 and len(set(counts.values())) == 1
        dropped = summary["relations"]["tasks"][task]["dropped"]
        assert dropped["balance"] > 0 and dropped["limit"] == 0
    again, _ = coco_questions(random_file, settings)
    assert [r.model_dump() for r in again] == [r.model_dump() for r in records]

    # an odd limit: 7 // 2 = 3 per answer, the remainder to one seeded answer
    records, summary = coco_questions(random_file, CocoQuestionSettings(tasks=RELATIONS, balance_answers=True,
                                                                        limit=7, seed=4))
    for task in RELATIONS:
        assert sorted(Counter(r.answer for r in records if r.task == task).values()) == [3, 4]
    assert summary["questions"] == {"left_right": 7, "above_below": 7}

    # without balancing, the limit is a uniform sample per task
    records, _ = coco_questions(random_file, CocoQuestionSettings(tasks=RELATIONS, limit=25))
    assert Counter(r.task for r in records) == {"left_right": 25, "above_below": 25}


def test_option_positions_are_balanced_per_relation_task(random_file):
    records, _ = coco_questions(random_file, CocoQuestionSettings(tasks=RELATIONS))
    for task in RELATIONS:
        positions = Counter(r.options.index(r.answer) for r in records if r.task == task)
        assert set(positions) == {0, 1} and abs(positions[0] - positions[1]) <= 1


def test_relations_match_an_independent_implementation(random_file):
    """Pairs and answers recomputed from the raw JSON with plain interval comparisons."""
    data = json.loads(random_file.read_text())
    count = Counter((a["image_id"], a["category_id"]) for a in data["annotations"])
    by_image: dict = {}
    for a in data["annotations"]:
        if count[(a["image_id"], a["category_id"])] == 1 and not a["iscrowd"]:
            by_image.setdefault(a["image_id"], []).append(a)
    expected = {}
    for img_id, anns in by_image.items():
        anns.sort(key=lambda a: a["id"])
        for i, a in enumerate(anns):
            for b in anns[i + 1:]:
                (ax, ay, aw, ah), (bx, by, bw, bh) = a["bbox"], b["bbox"]
                for task, (a0, a1, b0, b1), words in (
                        ("left_right", (ax, ax + aw, bx, bx + bw), ("left", "right")),
                        ("above_below", (ay, ay + ah, by, by + bh), ("above", "below"))):
                    if a1 <= b0 or b1 <= a0:
                        expected[f"coco-{img_id}-{a['id']}-{b['id']}-{task}"] = words[0] if a1 <= b0 else words[1]
    records, _ = coco_questions(random_file, CocoQuestionSettings(tasks=RELATIONS))
    assert {r.id: r.answer for r in records} == expected and len(expected) > 1000


def test_balance_areas_with_a_limit_keeps_the_balance(random_file):
    records, summary = coco_questions(random_file, CocoQuestionSettings(balance_areas=True, limit=9, seed=2))
    assert Counter(r.answer for r in records) == Counter({area: 1 for area in {r.answer for r in records}})
    assert len(records) == 9 and len({r.answer for r in records}) == 9
    records, summary = coco_questions(random_file, CocoQuestionSettings(balance_areas=True, limit=21, seed=2))
    assert sorted(Counter(r.answer for r in records).values()) == [2] * 6 + [3] * 3  # 21 = 9 * 2 + 3
    assert summary["dropped"]["limit"] == summary["candidates"] - summary["dropped"]["balance"] - 21


def test_balance_answers_with_an_empty_answer_is_an_error(tmp_path):
    img = image(5, 600, 400)
    anns = [annotation(1, img, "dog", [10, 10, 50, 50]), annotation(2, img, "cat", [300, 10, 50, 50])]
    path = write_instances(tmp_path / "instances_val2017.json", instances([img], anns))
    with pytest.raises(InputError, match="--balance-answers: no left_right question answers right"):
        coco_questions(path, CocoQuestionSettings(tasks=["left_right"], balance_answers=True))


def test_cli_relations_and_refusals(tmp_path, hard_file):
    out = tmp_path / "q.jsonl"
    result = run_cli("--instances", hard_file, "--out", out, "--tasks", "area9,left_right,above_below")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["questions"] == {"area9": 7, "left_right": 3, "above_below": 3}
    assert len(read_questions(out)) == 13
    for args, message in ((["--tasks", "left_right,depth"], "error: --tasks: depth needs a depth pass"),
                          (["--balance-answers"], "error: --balance-answers: balances relation tasks")):
        bad = tmp_path / "bad.jsonl"
        result = run_cli("--instances", hard_file, "--out", bad, *args)
        assert result.exit_code == 2 and result.output.startswith(message) and result.output.count("\n") == 1
        assert not bad.exists()
    assert COCO_TASK_NAMES == COCO_TASKS
