"""Small question files with real PNG images for the training tests: one coloured square per image, drawn in
the area its answer names, in the dataset layout (`ROOT/images/{split}/*.png`, `ROOT/questions/{split}.jsonl`)."""
from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

from blender_scenes.labels import LABELS

AREAS = LABELS["area9"]


def write_question_set(root: Path, split: str, answers: list[str],
                       sizes: tuple[tuple[int, int], ...] = ((56, 56), (84, 56), (70, 98)),
                       seed: int = 0) -> Path:
    """One record per answer (images cycle through `sizes`); returns the question file."""
    rng = random.Random(seed)
    rows = []
    for i, answer in enumerate(answers):
        width, height = sizes[i % len(sizes)]
        row, col = divmod(AREAS.index(answer), 3)
        cx, cy = (col + 0.5) * width / 3, (row + 0.5) * height / 3
        image = Image.new("RGB", (width, height))
        ImageDraw.Draw(image).rectangle([cx - 4, cy - 4, cx + 4, cy + 4], fill="red")
        rel = f"images/{split}/{i:04d}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        image.save(root / rel)
        options = list(AREAS)
        rng.shuffle(options)
        rows.append({"id": f"{split}-{i}", "image": rel, "task": "area9", "question": "Where is the red square?",
                     "options": options, "answer": answer, "split": split})
    path = root / "questions" / f"{split}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_relation_set(root: Path, tasks: str = "left_right,above_below") -> Path:
    """A COCO relation question file (records with `anchor`) built by `questions coco` from a small COCO file
    whose images exist as PNGs under ROOT/images; returns the question file (ROOT/questions/train.jsonl)."""
    from evaluation.coco import CocoQuestionSettings, write_coco_questions
    from tests.coco_fixtures import annotation, image, instances, write_instances

    images, anns = [], []
    for i in range(3):
        img = image(10 + i, 96, 64)
        images.append(img)
        anns += [annotation(100 * i + 1, img, "dog", [4.0 + 8 * i, 4.0, 16.0, 12.0]),
                 annotation(100 * i + 2, img, "cat", [60.0, 40.0, 20.0, 16.0])]
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (96, 64), "white").save(root / "images" / img["file_name"])
    coco = write_instances(root / "annotations" / "instances_train2017.json", instances(images, anns))
    out = root / "questions" / "train.jsonl"
    write_coco_questions(coco, out, images=root / "images", settings=CocoQuestionSettings(tasks=tasks.split(",")))
    return out


def write_mixed_questions(root: Path, n_questions: int, descriptions: list[str], n_images: int | None = None,
                          seed: int = 0) -> Path:
    """`n_questions` records cycling through the tasks area9 / horizontal / vertical and through `descriptions`,
    over `n_images` PNGs (default: one per description) of different sizes and colours with a red square placed
    differently in each; `ROOT/questions/test.jsonl`, returned."""
    from blender_scenes.questions import options_with_answer, question_text

    n_images = n_images or len(descriptions)
    (root / "images" / "test").mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        image = Image.new("RGB", (64 + 8 * i, 224 - 6 * i), ((20 * i) % 256, (255 - 20 * i) % 256, (60 * i) % 256))
        image.paste((255, 0, 0), (3 * i, 2 * i, 3 * i + 20, 2 * i + 20))
        image.save(root / "images" / "test" / f"{i:03d}.png")
    rng = random.Random(seed)
    rows = []
    for i in range(n_questions):
        task = ("area9", "horizontal", "vertical")[i % 3]
        answer = rng.choice(LABELS[task])
        rows.append({"id": f"q{i:03d}", "image": f"images/test/{i % n_images:03d}.png", "task": task,
                     "question": question_text(descriptions[i % len(descriptions)]),
                     "options": options_with_answer(task, answer, rng.randrange(len(LABELS[task])), rng),
                     "answer": answer, "source": "synthetic", "split": "test"})
    path = root / "questions" / "test.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
