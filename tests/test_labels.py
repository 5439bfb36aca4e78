import pytest

from blender_scenes.labels import (AREAS, area_of_box, area_of_cell, cells_of_area, distance_to_third_line,
                                   label_of_area, label_of_box)


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
