import pytest

from blender_scenes.labels import (
    AREAS,
    area_of_box,
    area_of_cell,
    cells_of_area,
    closer_of,
    distance_to_third_line,
    label_of_area,
    label_of_box,
    relation_of_boxes,
)


@pytest.mark.parametrize("cx, cy, expected", [
    (0, 0, "top left"), (111.9, 0, "top left"), (112, 0, "top center"), (223.9, 50, "top center"),
    (224, 50, "top right"), (335.9, 335.9, "bottom right"), (336, 336, "bottom right"),   # min(2, ...) clamps
    (168, 168, "center"), (10, 200, "center left"), (300, 150, "center right"), (168, 300, "bottom center"),
])
def test_area_from_box_centre(cx, cy, expected):
    assert area_of_box([cx - 2, cy - 3, 4, 6], 336, 336) == expected


def test_non_square_image_uses_each_side():
    # centre (250, 90) in a 600x300 image: col floor(3*250/600)=1, row floor(3*90/300)=0
    assert area_of_box([240, 80, 20, 20], 600, 300) == "top center"


def test_three_way_labels_project_the_nine_areas():
    for i, area in enumerate(AREAS):
        row, col = divmod(i, 3)
        box = [col * 100 + 40, row * 100 + 40, 20, 20]
        assert label_of_box(box, 300, 300, "area9") == area
        assert label_of_box(box, 300, 300, "horizontal") == ("left", "center", "right")[col]
        assert label_of_box(box, 300, 300, "vertical") == ("top", "center", "bottom")[row]
        assert label_of_area(area, "horizontal") == label_of_box(box, 300, 300, "horizontal")
        assert label_of_area(area, "vertical") == label_of_box(box, 300, 300, "vertical")


def test_cells_and_areas_agree_on_a_9x9_grid():
    seen = []
    for area in AREAS:
        cells = cells_of_area(area, 9, 9)
        assert len(cells) == 9
        assert all(area_of_cell(r, c, 9, 9) == area for r, c in cells)
        seen += cells
    assert sorted(seen) == [(r, c) for r in range(9) for c in range(9)]


def test_distance_to_third_line():
    assert distance_to_third_line([99, 10, 2, 2], 300, 300) == pytest.approx(0.0)
    assert distance_to_third_line([45, 45, 10, 10], 300, 300) == pytest.approx(50 / 300)


def test_unknown_task_is_an_error():
    with pytest.raises(ValueError, match="unknown task"):
        label_of_box([0, 0, 1, 1], 10, 10, "diagonal")



@pytest.mark.parametrize("target, anchor, left_right, above_below", [
    ([0, 0, 10, 10], [20, 0, 10, 10], "left", None),            # side by side, same rows
    ([20, 0, 10, 10], [0, 0, 10, 10], "right", None),
    ([0, 0, 10, 10], [10, 10, 10, 10], "left", "above"),        # touching corners count as separated
    ([10, 10, 10, 10], [0, 0, 10, 10], "right", "below"),
    ([0, 0, 10, 10], [9, 30, 10, 10], None, "above"),           # x-intervals overlap by one pixel
    ([5, 5, 2, 2], [0, 0, 20, 20], None, None),                 # nested
    ([0, 0, 20, 20], [5, 5, 2, 2], None, None),                 # nested the other way
    ([4, 0, 10, 10], [0, 0, 10, 10], None, None),               # overlapping
    ([5, 0, 0, 10], [5, 20, 10, 10], "left", "above"),          # zero width touching the anchor's left edge
    ([15, 0, 0, 10], [5, 20, 10, 10], "right", "above"),        # zero width on the anchor's right edge
    ([8, 0, 0, 10], [5, 0, 10, 10], None, None),                # zero width inside the anchor's x-interval
    ([5, 0, 0, 10], [5, 20, 0, 10], None, "above"),             # two zero widths at one x: neither side
])
def test_relation_rule_on_hand_made_boxes(target, anchor, left_right, above_below):
    assert relation_of_boxes(target, anchor, "left_right") == left_right
    assert relation_of_boxes(target, anchor, "above_below") == above_below


def test_relation_rule_is_antisymmetric():
    import random

    rng = random.Random(0)
    flip = {"left": "right", "right": "left", "above": "below", "below": "above", None: None}
    for _ in range(2000):
        a = [rng.randint(0, 50), rng.randint(0, 50), rng.randint(0, 20), rng.randint(0, 20)]
        b = [rng.randint(0, 50), rng.randint(0, 50), rng.randint(0, 20), rng.randint(0, 20)]
        for task in ("left_right", "above_below"):
            assert relation_of_boxes(b, a, task) == flip[relation_of_boxes(a, b, task)]


def test_unknown_relation_task_is_refused():
    with pytest.raises(ValueError, match="left_right or above_below"):
        relation_of_boxes([0, 0, 1, 1], [2, 2, 1, 1], "depth")


@pytest.mark.parametrize("a, b, expected", [
    (5.0, 10.0, 0), (10.0, 5.0, 1), (9.0, 10.0, 0),      # a difference of exactly 10% of the farther is asked
    (9.5, 10.0, None), (9.01, 10.0, None), (8.99, 10.0, 0), (10.0, 10.0, None),
])
def test_depth_rule_needs_the_margin(a, b, expected):
    assert closer_of(a, b) == expected


def test_depth_margin_is_configurable():
    assert closer_of(9.5, 10.0, margin=0.05) == 0
    assert closer_of(9.5, 10.0, margin=0.06) is None
    assert closer_of(9.0, 10.0, margin=0.0) == 0
    assert closer_of(10.0, 10.0, margin=0.0) is None
