"""`questions coco` on the COCO files our renderer writes: the same questions and answers as the
renderer's own question files, so synthetic and real questions come from one code path."""
import pytest

from blender_scenes.questions import read_questions
from evaluation.coco import CocoQuestionSettings, coco_questions

pytestmark = pytest.mark.bpy


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_rendered_dataset_questions_match_the_renderer(demo_dataset, split):
    renderer = [r for r in read_questions(demo_dataset / "questions" / f"{split}.jsonl") if r.task == "area9"]
    settings = CocoQuestionSettings(attributes=["color"], source="synthetic")  # the demo says "red square"
    ours, summary = coco_questions(demo_dataset / "annotations" / f"{split}.json", settings)
    assert summary["split"] == split and renderer
    by_object = {(r.image, tuple(r.target["bbox"])): r for r in ours}
    for theirs in renderer:
        mine = by_object[(theirs.image, tuple(theirs.target["bbox"]))]  # the target is uniquely described
        assert (mine.question, mine.answer, mine.split) == (theirs.question, theirs.answer, theirs.split)
        assert mine.target["area_label"] == theirs.target["area"]
