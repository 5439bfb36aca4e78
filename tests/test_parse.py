"""The answer parser, by a table: raw model text -> expected label (None = unparseable)."""
import pytest

from blender_scenes.labels import ALL_TASKS, AREAS, HORIZONTAL, LABELS, VERTICAL
from evaluation.parse import parse_answer

# Options as a question file holds them (a shuffled order): "B" is options[1] = "center", and so on.
NINE = ["bottom left", "center", "top left", "top center", "center left", "center right", "top right",
        "bottom center", "bottom right"]
THREE_H = ["right", "left", "center"]
THREE_V = ["bottom", "top", "center"]
LR = ["right", "left"]
AB = ["above", "below"]
DEPTH = ["dog", "dining table"]          # the names in the order the question says them
DEPTH_HOT = ["hot dog", "dog"]

CASES = [
    # (raw, task, options, expected)
    # exact labels, case, whitespace, punctuation
    ("top left", "area9", NINE, "top left"),
    ("Top Left", "area9", NINE, "top left"),
    ("  TOP LEFT.  ", "area9", NINE, "top left"),
    ("top left!", "area9", NINE, "top left"),
    ('"bottom right"', "area9", NINE, "bottom right"),
    ("center", "area9", NINE, "center"),
    ("Center.", "area9", NINE, "center"),
    # hyphens, underscores, British spelling, synonyms
    ("top-left", "area9", NINE, "top left"),
    ("Bottom-Right", "area9", NINE, "bottom right"),
    ("top_center", "area9", NINE, "top center"),
    ("centre", "area9", NINE, "center"),
    ("middle", "area9", NINE, "center"),
    ("The middle.", "area9", NINE, "center"),
    ("centre-left", "area9", NINE, "center left"),
    ("middle left", "area9", NINE, "center left"),
    ("upper left", "area9", NINE, "top left"),
    ("lower right", "area9", NINE, "bottom right"),
    ("upper middle", "area9", NINE, "top center"),
    ("lower-centre", "area9", NINE, "bottom center"),
    ("central", "area9", NINE, "center"),
    # word order
    ("left top", "area9", NINE, "top left"),
    ("right bottom", "area9", NINE, "bottom right"),
    ("center top", "area9", NINE, "top center"),
    ("left center", "area9", NINE, "center left"),
    ("left middle", "area9", NINE, "center left"),
    ("right-center", "area9", NINE, "center right"),
    # longest phrase wins: "center" inside "center left" is not "center"
    ("center left", "area9", NINE, "center left"),
    ("center right", "area9", NINE, "center right"),
    ("top center", "area9", NINE, "top center"),
    ("bottom center", "area9", NINE, "bottom center"),
    ("Center-Right side", "area9", NINE, "center right"),
    # sentences
    ("Top Left corner", "area9", NINE, "top left"),
    ("The red star is in the bottom right of the image.", "area9", NINE, "bottom right"),
    ("The dining table is located in the center of the image.", "area9", NINE, "center"),
    ("It is in the upper-left quadrant.", "area9", NINE, "top left"),
    ("The cat is at the top, on the left.", "area9", NINE, "top left"),
    ("In the middle of the left side", "area9", NINE, "center left"),
    ("to the left of the center", "area9", NINE, "center left"),
    ("Answer: bottom center", "area9", NINE, "bottom center"),
    ("The answer is top right.", "area9", NINE, "top right"),
    ("It's in the top right corner of the picture.", "area9", NINE, "top right"),
    ("bottom left\n", "area9", NINE, "bottom left"),
    ("At the top. On the left.", "area9", NINE, "top left"),  # two consistent statements
    # "right" as an intensifier is not a position
    ("It is right in the middle of the image.", "area9", NINE, "center"),
    ("Right at the top, on the left.", "area9", NINE, "top left"),
    ("On the right in the top corner.", "area9", NINE, "top right"),
    ("bottom right in the image", "area9", NINE, "bottom right"),
    ("Right.", "horizontal", THREE_H, "right"),
    # option letters / numbers (1-based), only when the question had options
    ("B", "area9", NINE, "center"),
    ("b", "area9", NINE, "center"),
    ("(B)", "area9", NINE, "center"),
    ("B.", "area9", NINE, "center"),
    ("(2)", "area9", NINE, "center"),
    ("2", "area9", NINE, "center"),
    ("Option 3", "area9", NINE, "top left"),
    ("option (c)", "area9", NINE, "top left"),
    ("Answer: I", "area9", NINE, "bottom right"),
    ("The correct option is 9.", "area9", NINE, "bottom right"),
    ("C) top left", "area9", NINE, "top left"),          # marker and text agree
    ("B) top left", "area9", NINE, None),                # marker says center, text top left
    ("J", "area9", NINE, None),                          # no 10th option
    ("10", "area9", NINE, None),
    ("0", "area9", NINE, None),
    ("B", "area9", None, None),                          # no options to point into
    ("B", "open", [], None),
    # refusals, empty text, nonsense
    ("", "area9", NINE, None),
    ("   ", "area9", NINE, None),
    ("I cannot determine the position of the object.", "area9", NINE, None),
    ("I don't know.", "area9", NINE, None),
    ("There is no dining table in this image.", "area9", NINE, None),
    ("banana", "area9", NINE, None),
    # two different areas, contradictions
    ("top left or bottom right", "area9", NINE, None),
    ("top left and center", "area9", NINE, None),
    ("It could be top left, or maybe top right.", "area9", NINE, None),
    ("top bottom", "area9", NINE, None),
    ("left right", "area9", NINE, None),
    ("top left center", "area9", NINE, None),
    # a row or a column alone is not one of nine areas
    ("top", "area9", NINE, None),
    ("On the left side.", "area9", NINE, None),
    ("left", "open", [], None),
    # open task: same parser, no options
    ("The bottom right corner.", "open", [], "bottom right"),
    ("middle", "open", [], "center"),
    # horizontal task: the column of the answer
    ("left", "horizontal", THREE_H, "left"),
    ("Right.", "horizontal", THREE_H, "right"),
    ("middle", "horizontal", THREE_H, "center"),
    ("centre", "horizontal", THREE_H, "center"),
    ("On the left side of the image.", "horizontal", THREE_H, "left"),
    ("top left", "horizontal", THREE_H, "left"),         # a nine-way answer projects onto its column
    ("top center", "horizontal", THREE_H, "center"),
    ("center right", "horizontal", THREE_H, "right"),
    ("top", "horizontal", THREE_H, None),                # a row says nothing about the column
    ("left or right", "horizontal", THREE_H, None),
    ("A", "horizontal", THREE_H, "right"),
    ("(3)", "horizontal", THREE_H, "center"),
    ("D", "horizontal", THREE_H, None),
    # vertical task: the row of the answer
    ("top", "vertical", THREE_V, "top"),
    ("Bottom", "vertical", THREE_V, "bottom"),
    ("upper", "vertical", THREE_V, "top"),
    ("in the middle", "vertical", THREE_V, "center"),
    ("bottom left", "vertical", THREE_V, "bottom"),
    ("center left", "vertical", THREE_V, "center"),
    ("left", "vertical", THREE_V, None),
    ("top or bottom", "vertical", THREE_V, None),
    ("Option 2", "vertical", THREE_V, "top"),
    # left_right: the target's side of the anchor
    ("left", "left_right", LR, "left"),
    ("Right.", "left_right", LR, "right"),
    ("LEFT", "left_right", LR, "left"),
    ("to the left", "left_right", LR, "left"),
    ("To the left of the cat.", "left_right", LR, "left"),
    ("on the left of the cat", "left_right", LR, "left"),
    ("The dog is on the right side of the cat.", "left_right", LR, "right"),
    ("to the right", "left_right", LR, "right"),
    ("It is right next to the cat, on its left.", "left_right", LR, "left"),   # intensifier 'right'
    ("Right above the cat, to the right.", "left_right", LR, "right"),
    ("left-hand side", "left_right", LR, "left"),
    ("top left", "left_right", LR, "left"),                 # an area answer keeps its side
    ("A", "left_right", LR, "right"),
    ("(b)", "left_right", LR, "left"),
    ("Option 2", "left_right", LR, "left"),
    ("B) left", "left_right", LR, "left"),
    ("A) left", "left_right", LR, None),                   # marker says right, text left
    ("C", "left_right", LR, None),
    ("left or right", "left_right", LR, None),              # contradiction
    ("It is to the left, not the right.", "left_right", LR, None),   # negation: not read
    ("It is not to the left of the cat.", "left_right", LR, None),
    ("I can't tell.", "left_right", LR, None),
    ("above", "left_right", LR, None),                      # the other axis
    ("in the middle", "left_right", LR, None),
    # above_below
    ("above", "above_below", AB, "above"),
    ("Below.", "above_below", AB, "below"),
    ("over the table", "above_below", AB, "above"),
    ("on top of the table", "above_below", AB, "above"),
    ("It sits on top of the car.", "above_below", AB, "above"),
    ("under", "above_below", AB, "below"),
    ("beneath the cat", "above_below", AB, "below"),
    ("It is underneath the table.", "above_below", AB, "below"),
    ("higher than the cat", "above_below", AB, "above"),
    ("lower", "above_below", AB, "below"),
    ("The cup is below the dining table.", "above_below", AB, "below"),
    ("A", "above_below", AB, "above"),
    ("(2)", "above_below", AB, "below"),
    ("above or below", "above_below", AB, None),
    ("It is over and under.", "above_below", AB, None),
    ("Neither above nor below.", "above_below", AB, None),
    ("It is not above the cat.", "above_below", AB, None),
    ("left", "above_below", AB, None),
    ("There is no cat in the image.", "above_below", AB, None),
    # depth: the options are the two objects' names
    ("dog", "depth", DEPTH, "dog"),
    ("The dog.", "depth", DEPTH, "dog"),
    ("The dining table is closer to the camera.", "depth", DEPTH, "dining table"),
    ("Dining-Table", "depth", DEPTH, "dining table"),
    ("the dogs", "depth", DEPTH, "dog"),
    ("A", "depth", DEPTH, "dog"),
    ("(b)", "depth", DEPTH, "dining table"),
    ("Option 2", "depth", DEPTH, "dining table"),
    ("B) the dining table", "depth", DEPTH, "dining table"),
    ("A) the dining table", "depth", DEPTH, None),           # marker and name disagree
    ("C", "depth", DEPTH, None),
    ("the dog and the dining table", "depth", DEPTH, None),   # both names
    ("The dog is closer than the dining table.", "depth", DEPTH, None),
    ("The dining table is farther away.", "depth", DEPTH, None),   # names the farther one: not read
    ("The dog is behind.", "depth", DEPTH, None),
    ("Neither.", "depth", DEPTH, None),
    ("I cannot tell which is closer.", "depth", DEPTH, None),
    ("The dog is not closer.", "depth", DEPTH, None),
    ("the cat", "depth", DEPTH, None),                      # not an option
    ("dog", "depth", None, None),                           # no options, no names to read
    ("the hot dog", "depth", DEPTH_HOT, "hot dog"),         # 'dog' inside 'hot dog' is not the dog
    ("The dog.", "depth", DEPTH_HOT, "dog"),
    ("The hot dog, not the dog", "depth", DEPTH_HOT, None),
]


@pytest.mark.parametrize("raw, task, options, expected", CASES)
def test_parse_table(raw, task, options, expected):
    assert parse_answer(raw, task, options) == expected


def test_table_is_large_and_covers_every_task():
    assert len(CASES) >= 144   # 104 position cases, then at least 40 relation cases
    # mc (a benchmark's own options) has its table in tests/test_mc.py
    assert {task for _, task, _, _ in CASES} | {"mc"} == set(LABELS) | {"depth", "mc"} == set(ALL_TASKS)


@pytest.mark.parametrize("task", ["area9", "open", "horizontal", "vertical"])
def test_every_label_reads_as_itself_in_every_form(task):
    for label in LABELS[task]:
        for form in (label, label.upper(), label.title(), label.replace(" ", "-"), f"The {label}.",
                     label.replace("center", "centre"), label.replace("center", "middle")):
            assert parse_answer(form, task, list(LABELS[task])) == label, form


def test_nine_way_answers_project_onto_three_way_tasks():
    for i, area in enumerate(AREAS):
        assert parse_answer(area, "horizontal") == HORIZONTAL[i % 3]
        assert parse_answer(area, "vertical") == VERTICAL[i // 3]


def test_result_is_always_a_label_of_the_task_or_none():
    samples = [raw for raw, *_ in CASES] + ["top left bottom", "right right", "center center", "mid"]
    for task in LABELS:
        for raw in samples:
            assert parse_answer(raw, task, NINE if task in ("area9",) else None) in (*LABELS[task], None)
    for raw in samples:
        assert parse_answer(raw, "depth", DEPTH) in (*DEPTH, None)


@pytest.mark.parametrize("task, labels", [("left_right", LR), ("above_below", AB)])
def test_relation_labels_read_as_themselves(task, labels):
    for label in labels:
        for form in (label, label.upper(), f"The {label}.", f"It is {label} the other object."):
            assert parse_answer(form, task, labels) == label, form


def test_unknown_task_is_an_error():
    with pytest.raises(ValueError, match="unknown task"):
        parse_answer("top left", "colour")
