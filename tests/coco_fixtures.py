"""COCO instances files in the shapes real COCO 2017 files have, for tests and benchmarks (offline).

Real shapes: float boxes, polygon segmentations, crowd regions as *uncompressed* RLE (`counts` a list of
ints, column-major), 12-digit ids, images without annotations, the 80 categories with gaps in the ids.
`hard_case_instances()` holds the hard cases with their expected outcome written by hand;
`write_random_instances()` streams a large random file (val2017 / train2017 size) for the benchmark.
Reusable by other tests: `from tests.coco_fixtures import hard_case_instances, write_instances`.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

# The 80 COCO 2017 categories with their real ids (1..90 with gaps: 12, 26, 29, 30, 45, 66, 68, 69, 71, 83).
COCO_CATEGORY_NAMES = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase",
    "scissors", "teddy bear", "hair drier", "toothbrush",
]
_MISSING_IDS = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}
COCO_CATEGORY_IDS = [i for i in range(1, 91) if i not in _MISSING_IDS]
COCO_CATEGORIES = [{"supercategory": "thing", "id": cid, "name": name}
                   for cid, name in zip(COCO_CATEGORY_IDS, COCO_CATEGORY_NAMES)]
CATEGORY_ID = {c["name"]: c["id"] for c in COCO_CATEGORIES}


def image(image_id: int, width: int, height: int) -> dict:
    return {"license": 1, "file_name": f"{image_id:012d}.jpg", "coco_url": "", "height": height,
            "width": width, "date_captured": "2013-11-14 17:02:52", "flickr_url": "", "id": image_id}


def rectangle_rle(bbox: list[float], width: int, height: int) -> dict:
    """Uncompressed, column-major RLE of the box's pixels, as crowd regions are stored in COCO."""
    x0, y0 = int(bbox[0]), int(bbox[1])
    x1, y1 = min(width, int(bbox[0] + bbox[2]) + 1), min(height, int(bbox[1] + bbox[3]) + 1)
    counts, run, value = [], 0, 0
    for x in range(width):
        inside_col = x0 <= x < x1
        for segment_value, length in ((0, y0), (1, y1 - y0), (0, height - y1)) if inside_col else ((0, height),):
            if length == 0:
                continue
            if segment_value == value:
                run += length
            else:
                counts.append(run)
                run, value = length, segment_value
    counts.append(run)
    return {"counts": counts, "size": [height, width]}


def annotation(ann_id: int, img: dict, category: str, bbox: list[float], iscrowd: int = 0, **extra) -> dict:
    """An annotation with a polygon (or, for crowd, an uncompressed RLE) matching its float box."""
    x, y, w, h = bbox
    if iscrowd:
        segmentation = rectangle_rle(bbox, img["width"], img["height"])
    else:
        segmentation = [[x, y, x + w, y, x + w, y + h, x, y + h]]
    return {"segmentation": segmentation, "area": round(w * h, 4), "iscrowd": iscrowd, "image_id": img["id"],
            "bbox": list(bbox), "category_id": CATEGORY_ID[category], "id": ann_id, **extra}


def instances(images: list[dict], annotations: list[dict], categories: list[dict] | None = None) -> dict:
    return {"info": {"description": "test fixture", "version": "1.0", "year": 2017},
            "licenses": [{"url": "", "id": 1, "name": "test"}],
            "images": images, "annotations": annotations,
            "categories": [dict(c) for c in (COCO_CATEGORIES if categories is None else categories)]}


def write_instances(path: str | Path, data: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


# Hand-checked expectations of hard_case_instances() (annotation id -> outcome). Labels were worked out
# by hand from the box centres: col = floor(3*cx/W), row = floor(3*cy/H).
HARD_CASE_EXPECTED = {
    # image 397133, 640 x 427
    1001: {"kept": True, "area9": "center", "note": "dining table, centre (320.5, 220.25)"},
    1002: {"kept": False, "note": "person, repeated (2 instances)"},
    1003: {"kept": False, "note": "person, repeated"},
    1004: {"kept": False, "note": "book, one box + a crowd region of books: repeated"},
    1005: {"kept": False, "note": "book crowd region: repeated"},
    1006: {"kept": True, "area9": "bottom right", "crowd": True, "note": "bottle, only a crowd region"},
    1007: {"kept": True, "area9": "top left", "small": True, "note": "cup, 12.5 x 10.25 px box (0.05% of image)"},
    # image 999999999999 (12 digits), 600 x 300
    2001: {"kept": True, "area9": "top center", "on_line": True, "note": "dog, centre x = 200 = W/3 exactly"},
    2002: {"kept": True, "area9": "bottom right", "note": "cat, centre (550, 250): 1/6 from a line"},
    2003: {"kept": True, "area9": "center left", "near_line": True,
           "note": "horse, centre (195.5, 150.5): 0.0075 of W left of the line"},
    # image 100000000001, 300 x 500 (portrait)
    3001: {"kept": True, "area9": "bottom center", "note": "person, centre (150.25, 400.0)"},
}
HARD_CASE_IMAGES_WITHOUT_ANNOTATIONS = [7, 581929]


def hard_case_instances() -> dict:
    """A small val-like file with every hard case; HARD_CASE_EXPECTED says what should happen to each."""
    a = image(397133, 640, 427)
    b = image(999999999999, 600, 300)
    c = image(100000000001, 300, 500)
    empty1, empty2 = image(7, 640, 480), image(581929, 480, 640)
    anns = [
        annotation(1001, a, "dining table", [100.5, 120.25, 440.0, 200.0]),
        annotation(1002, a, "person", [10.0, 20.0, 50.5, 120.75]),
        annotation(1003, a, "person", [500.3, 40.1, 60.0, 150.0]),
        annotation(1004, a, "book", [300.0, 10.0, 20.0, 30.0]),
        annotation(1005, a, "book", [200.0, 0.0, 150.0, 60.0], iscrowd=1),
        annotation(1006, a, "bottle", [450.0, 300.0, 150.0, 100.0], iscrowd=1),
        annotation(1007, a, "cup", [20.0, 30.0, 12.5, 10.25]),
        annotation(2001, b, "dog", [150.0, 20.0, 100.0, 60.0]),
        annotation(2002, b, "cat", [520.0, 220.0, 60.0, 60.0]),
        annotation(2003, b, "horse", [100.0, 80.0, 191.0, 141.0]),
        annotation(3001, c, "person", [100.0, 350.0, 100.5, 100.0]),
    ]
    return instances([a, b, c, empty1, empty2], anns)


def write_random_instances(path: str | Path, n_images: int, n_annotations: int, seed: int = 0,
                           crowd_fraction: float = 0.01, empty_fraction: float = 0.01) -> Path:
    """Stream a random instances file of real COCO's shape and size (~500 bytes per annotation).

    Categories follow a skewed frequency (person is common) so repeated categories occur as in COCO.
    Polygon and RLE texts come from a pool (the parser still builds every number), which keeps writing fast."""
    rng = random.Random(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = [85.0] + [1.0 + 3.0 * rng.random() for _ in COCO_CATEGORY_IDS[1:]]
    sizes = [(640, 480), (640, 427), (480, 640), (500, 375), (427, 640), (640, 640)]
    images = [image(100000 + 7 * i, *sizes[i % len(sizes)]) for i in range(n_images)]
    with_anns = [img for img in images if rng.random() >= empty_fraction]
    polygons = [",".join(f"{rng.uniform(0, 640):.2f}" for _ in range(2 * rng.randint(14, 42)))
                for _ in range(500)]
    rles = [",".join(str(rng.randint(1, 4000)) for _ in range(rng.randint(60, 400))) for _ in range(50)]
    image_of = [rng.choice(with_anns) for _ in range(n_annotations)]
    image_of.sort(key=lambda img: img["id"])  # COCO lists annotations roughly grouped by image
    categories = rng.choices(COCO_CATEGORY_IDS, weights=weights, k=n_annotations)
    with path.open("w", encoding="utf-8") as fh:
        fh.write('{"info":{"description":"random COCO-shaped file","year":2017},"licenses":[],"images":')
        fh.write(json.dumps(images, separators=(",", ":")))
        fh.write(',"annotations":[')
        for i, (img, cat) in enumerate(zip(image_of, categories)):
            w = rng.uniform(2.0, img["width"] * 0.8)
            h = rng.uniform(2.0, img["height"] * 0.8)
            x = rng.uniform(0, img["width"] - w)
            y = rng.uniform(0, img["height"] - h)
            crowd = rng.random() < crowd_fraction
            if crowd:
                seg = f'{{"counts":[{rles[i % len(rles)]}],"size":[{img["height"]},{img["width"]}]}}'
            else:
                seg = f"[[{polygons[i % len(polygons)]}]]"
            fh.write(("," if i else "") + f'{{"segmentation":{seg},"area":{w * h * 0.6:.4f},'
                     f'"iscrowd":{int(crowd)},"image_id":{img["id"]},"bbox":[{x:.2f},{y:.2f},{w:.2f},{h:.2f}],'
                     f'"category_id":{cat},"id":{900000000000 + i}}}')
        fh.write('],"categories":')
        fh.write(json.dumps(COCO_CATEGORIES, separators=(",", ":")))
        fh.write("}")
    return path
