"""Build the static viewer folder of a dataset, a question file or a run: plain HTML/CSS/JS that opens from
file:// with no server and no network. Imports blender_scenes and evaluation.rundir only; no torch, no bpy.

What the folder holds (design):
  index.html, viewer.js, viewer.css   the page, copied from this package, the same for every input
  data/index.js    `S2RView.index({...})`: the title, the item count, chunk and page sizes, and the facets:
                   per filter (split, task, area, shape, color, size, answer; result for runs) its values and
                   one small integer per item. Filters and paging run on these columns alone, so at 100k items
                   the first page needs this file (about 2 MB) and the chunks of the 50 items it shows, never the
                   other chunks.
  data/NNNN.js     `S2RView.chunk(K, [...])`: items K*100 .. K*100+99 in full (question, options, answer, boxes,
                   masks; for runs the model's answers). Script files, not JSON: fetch() of local files is
                   blocked under file://, a <script> element is not.
  images/          only with `copy_images`: the pictures, so the folder can be moved or shared. By default an
                   item names its image by a path relative to the output folder (no copy: building is fast and
                   the folder small, but it must stay where it was built relative to the data).

One item per question record (a rendered dataset: every record of questions/SPLIT.jsonl; a run: every
prediction row, joined with its question by id). Where the question's folder is a rendered dataset, the
boxes of every object of its image come from annotations/SPLIT.json (the asked object is the target, the
relation's other object the anchor, the rest distractors), with their masks; elsewhere the record's own
target and anchor boxes. Masks stay COCO RLE strings and viewer.js decodes the few shown on a page into the
canvas: no per-object PNG to encode at build time (100k scenes would be 300k files), no polygon tracing, and
the pixels are exactly pycocotools' (polygon and uncompressed RLE segmentations are drawn as they are).

The same input gives the same bytes: items in file order, facet values sorted, no clock, no absolute path
of this machine other than the relative image paths. The folder is written under a temporary name beside the
target and renamed whole (`blender_scenes.files.staged_folder`)."""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from urllib.parse import quote

from tqdm.auto import tqdm

from blender_scenes.cocofile import load_instances
from blender_scenes.config import SPLITS
from blender_scenes.errors import InputError
from blender_scenes.files import atomic_write_text, staged_folder
from blender_scenes.labels import AREAS, area_of_box
from blender_scenes.questions import QuestionRecord, dataset_root, read_questions
from evaluation.rundir import PREDICTIONS, RUN, read_predictions, read_run_info, run_title

CHUNK = 100          # items per data/NNNN.js: a page of 50 filtered items loads at most 50 chunks of ~40 kB
PAGE = 50            # items per page
PROGRESS_MIN = 2000  # inputs smaller than this build in well under a second: no bar
PAGE_FILES = ("index.html", "viewer.js", "viewer.css")
FACETS = ("split", "task", "area", "shape", "color", "size", "answer")
EXPECTED = "a rendered dataset folder (questions/SPLIT.jsonl), a question file (*.jsonl) or a run folder " \
           f"({PREDICTIONS})"


@dataclass
class Source:
    """What one input gives the page: its kind, a title and the items (dicts as the chunks hold them) with
    their facet values (one dict per item), and the absolute image path of each item (None: unknown)."""
    kind: str
    title: str
    items: list[dict] = field(default_factory=list)
    facets: list[dict] = field(default_factory=list)
    images: list[Path | None] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------- inputs

def read_source(path: Path, questions: Path | None = None, progress: bool = False) -> Source:
    """The items of a dataset folder, a question file or a run folder; anything else is one InputError."""
    if not path.exists():
        raise InputError(f"{path}: not found (expected {EXPECTED})")
    if path.is_dir() and (path / PREDICTIONS).is_file():
        return _run_source(path, questions, progress)
    if questions is not None:
        raise InputError(f"--questions {questions}: only for a run folder; {path} is not one (no {PREDICTIONS})")
    if path.is_dir():
        files_ = _dataset_question_files(path)
        if not files_:
            raise InputError(f"{path}: not a dataset, question file or run (expected {EXPECTED})")
        source = Source("dataset", _manifest_name(path) or path.resolve().name)
        for qfile in files_:
            _add_records(source, read_questions(qfile), qfile, progress)
        return source
    if path.suffix != ".jsonl":
        raise InputError(f"{path}: not a dataset, question file or run (expected {EXPECTED})")
    source = Source("questions", path.name)
    _add_records(source, read_questions(path), path, progress)
    return source


def _dataset_question_files(root: Path) -> list[Path]:
    """questions/SPLIT.jsonl of a dataset, the standard splits first, then any other in name order."""
    folder = root / "questions"
    if not folder.is_dir():
        return []
    names = sorted(p.stem for p in folder.glob("*.jsonl") if not p.name.startswith("."))
    order = [s for s in SPLITS if s in names] + [s for s in names if s not in SPLITS]
    return [folder / f"{s}.jsonl" for s in order]


def _manifest_name(root: Path) -> str | None:
    try:
        name = json.loads((root / "manifest.json").read_text(encoding="utf-8")).get("name")
    except (ValueError, AttributeError, OSError):
        return None
    return name if isinstance(name, str) else None


def _run_source(run_dir: Path, questions: Path | None, progress: bool) -> Source:
    """A run's prediction rows, each joined with its question (by id) from the run's question file."""
    info = read_run_info(run_dir / RUN)
    if questions is None:
        named = (info or {}).get("questions")
        if not isinstance(named, str):
            raise InputError(f"{run_dir / RUN}: field 'questions': missing (expected the run's question file; "
                             "or pass --questions)")
        questions = Path(named)
        if not questions.is_file():
            raise InputError(f"{run_dir / RUN}: field 'questions': {named} not found (expected the run's question "
                             "file; pass --questions where it moved)")
    records = read_questions(questions)
    by_id = {r.id: r for r in records}
    source = Source("run", run_title(run_dir, info))
    boxes = _Annotations(questions)
    rows = read_predictions(run_dir / PREDICTIONS)
    for row in tqdm(rows, unit="q", desc="view", disable=not progress or len(rows) < PROGRESS_MIN):
        record = by_id.get(row["id"])
        if record is None:   # an answer to a question the file no longer holds: shown, without a picture
            item, facets, image = _missing_item(row), {"task": str(row.get("task") or "")}, None
        else:
            item, facets, image = _record_item(record, questions, boxes)
        item.update(raw=row.get("raw"), parsed=row.get("parsed"), result=_result(row))
        if row.get("error") is not None:
            item["error"] = str(row["error"])
        facets["result"] = item["result"]
        source.items.append(item)
        source.facets.append(facets)
        source.images.append(image)
    return source


def _result(row: dict) -> str:
    """correct / wrong / unparseable (counted wrong) / failed (no answer after retries) / unscored."""
    if row.get("error") is not None:
        return "failed"
    if not isinstance(row.get("correct"), bool):
        return "unscored"
    if row["correct"]:
        return "correct"
    return "unparseable" if row.get("parsed") is None else "wrong"


def _missing_item(row: dict) -> dict:
    return {"id": row["id"], "img": None, "split": "", "task": str(row.get("task") or ""), "source": "",
            "question": "(not in the question file)", "options": [], "answer": row.get("answer"), "boxes": []}


def _add_records(source: Source, records: list[QuestionRecord], qfile: Path, progress: bool) -> None:
    boxes = _Annotations(qfile)
    for record in tqdm(records, unit="q", desc="view", disable=not progress or len(records) < PROGRESS_MIN):
        item, facets, image = _record_item(record, qfile, boxes)
        source.items.append(item)
        source.facets.append(facets)
        source.images.append(image)


class _Annotations:
    """The COCO annotations of the images of a question file that lies in a rendered dataset
    (ROOT/questions/X.jsonl beside ROOT/annotations/SPLIT.json), read once per split with pycocotools (through
    the project's one reader), looked up by the image's absolute path."""

    def __init__(self, qfile: Path):
        self.root = dataset_root(qfile)
        self.splits: dict[str, dict[str, tuple[dict, list[dict], dict]]] = {}

    def of(self, split: str, image: Path) -> tuple[dict, list[dict], dict] | None:
        """(the COCO image entry, its annotations, category id -> name) or None."""
        if split not in self.splits:
            self.splits[split] = self._load(split)
        return self.splits[split].get(os.path.normpath(image))

    def _load(self, split: str) -> dict:
        path = self.root / "annotations" / f"{split}.json"
        if "/" in split or split.startswith(".") or not path.is_file():
            return {}
        coco = load_instances(path, keep_masks=True)
        names = {cid: str(c.get("name", cid)) for cid, c in coco.cats.items()}
        return {os.path.normpath(self.root / img["file_name"]): (img, coco.imgToAnns.get(img_id, []), names)
                for img_id, img in coco.imgs.items()}


def _record_item(record: QuestionRecord, qfile: Path, boxes: _Annotations) -> tuple[dict, dict, Path]:
    image = Path(record.image)   # resolve_image, with the root found once per file
    image = image if image.is_absolute() else boxes.root / image
    found = boxes.of(record.split, image)
    item = {"id": record.id, "img": None, "split": record.split, "task": record.task, "source": record.source,
            "question": record.question, "options": record.options, "answer": record.answer,
            "boxes": _boxes(record, found)}
    target = record.target
    facets = {"split": record.split, "task": record.task, "area": _area(target, found),
              "shape": str(target.get("shape") or target.get("category") or ""),
              "color": str(target.get("color") or ""), "size": str(target.get("size") or ""),
              "answer": record.answer}
    return item, facets, image


def _area(target: dict, found) -> str:
    """The target's area label: as the record says (synthetic `area`, COCO `area_label`), else from its box."""
    for key in ("area", "area_label"):
        if target.get(key) in AREAS:
            return target[key]
    width, height = target.get("image_width"), target.get("image_height")
    if found and not (width and height):
        width, height = found[0].get("width"), found[0].get("height")
    bbox = target.get("bbox")
    try:
        return area_of_box(bbox, width, height)
    except (TypeError, ValueError, ZeroDivisionError):
        return ""


def _same_box(a, b) -> bool:
    try:
        return len(a) == len(b) == 4 and all(abs(float(x) - float(y)) < 0.01 for x, y in zip(a, b))
    except (TypeError, ValueError):
        return False


def _boxes(record: QuestionRecord, found) -> list[list]:
    """[x, y, w, h, role, label, mask] per object: the image's annotations when known (the record's target and
    anchor found among them by their box), plus the record's target / anchor when no annotation matches."""
    asked = [("target", record.target)] + ([("anchor", record.anchor)] if record.anchor else [])
    out, matched = [], set()
    if found:
        _, anns, names = found
        for ann in sorted(anns, key=lambda a: a["id"]):
            role = next((r for r, obj in asked if _same_box(ann.get("bbox"), obj.get("bbox"))), "distractor")
            matched.add(role)
            label = " ".join(str(v) for v in (ann.get("color"), ann.get("size"), names.get(ann.get("category_id")))
                             if v)
            out.append([*_numbers(ann["bbox"]), role, label, _mask(ann.get("segmentation"))])
    for role, obj in asked:
        if role not in matched and _is_box(obj.get("bbox")):
            label = " ".join(str(obj[k]) for k in ("color", "size", "category") if obj.get(k))
            out.append([*_numbers(obj["bbox"]), role, label, None])
    return out


def _is_box(bbox) -> bool:
    return isinstance(bbox, list) and len(bbox) == 4 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox)


def _numbers(bbox) -> list[float]:
    return [round(float(v), 2) for v in bbox]


def _mask(segmentation):
    """What viewer.js draws: a compressed RLE string, a list of run lengths, or a list of polygons."""
    if isinstance(segmentation, dict):
        counts = segmentation.get("counts")
        return counts if isinstance(counts, (str, list)) else None
    if isinstance(segmentation, list) and segmentation and all(isinstance(p, list) for p in segmentation):
        return segmentation
    return None


# ------------------------------------------------------------------------------------------------- output

def check_out(out: Path, source: Path) -> None:
    """The output folder must be new, empty or an earlier viewer (it is replaced whole), and hold no input."""
    here, there = Path(os.path.abspath(out)), Path(os.path.abspath(source))
    if here == there or here in there.parents:
        raise InputError(f"--out {out}: holds the input {source} (expected a folder outside it)")
    if out.exists():
        if not out.is_dir():
            raise InputError(f"--out {out}: is a file (expected a folder for the viewer)")
        if any(out.iterdir()) and not ((out / "index.html").is_file() and (out / "data" / "index.js").is_file()):
            raise InputError(f"--out {out}: folder is not empty and not an earlier viewer (expected a new folder; "
                             "it is replaced whole)")


def build_viewer(source: str | Path, out: str | Path, *, questions: str | Path | None = None,
                 copy_images: bool = False, progress: bool = False) -> dict:
    """Write the viewer of `source` (a dataset folder, a question file or a run folder) into the folder `out`;
    a run's question file comes from its run.json unless `questions` is given. Returns a summary."""
    source, out = Path(source), Path(out)
    check_out(out, source)
    data = read_source(source, Path(questions) if questions else None, progress)
    with staged_folder(out) as staging:
        staging.mkdir()
        if copy_images:
            _copy_images(data, staging, progress)
        else:
            _link_images(data, out)
        _write_page(staging)
        chunks = _write_data(data, staging / "data", progress)
    return {"out": str(out), "index": str(out / "index.html"), "kind": data.kind, "items": len(data.items),
            "chunks": chunks, "copied_images": copy_images}


def _url(relative: str) -> str:
    """A relative path as a URL (spaces, '#' and '%' in file names escaped, a name that is not UTF-8 as its
    bytes); '/' separators on every OS."""
    return quote(relative.replace(os.sep, "/").encode("utf-8", "surrogateescape"), safe="/")


def _link_images(data: Source, out: Path) -> None:
    """Each item names its image relative to the output folder; lexical paths on both sides, as the browser
    joins a relative URL to the page's address."""
    base = os.path.abspath(out)
    for item, image in zip(data.items, data.images):
        if image is not None:
            item["img"] = _url(os.path.relpath(os.path.abspath(image), base))


def _copy_images(data: Source, staging: Path, progress: bool) -> None:
    """Copy each distinct image once into images/: a dataset's under its own relative path (images/test/1.png),
    any other under a name made from its path (two photos both called 1.jpg stay two)."""
    names: dict[Path, str] = {}
    used: set[str] = set()
    for item, image in zip(data.items, data.images):
        if image is None:
            continue
        if image not in names:
            names[image] = _copy_name(image, used)
            used.add(names[image])
        item["img"] = _url(names[image])
    for image, name in tqdm(names.items(), unit="img", desc="copy images",
                            disable=not progress or len(names) < PROGRESS_MIN):
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(image, target)
        except FileNotFoundError:
            raise InputError(f"{image}: image not found (expected the picture a question names, to copy with "
                             "--copy-images)") from None


def _copy_name(image: Path, taken: set[str]) -> str:
    parts = image.parts
    if "images" in parts:   # a dataset's layout: keep what follows images/
        tail = parts[len(parts) - 1 - parts[::-1].index("images") + 1:]
        name = "/".join(("images", *tail))
        if name not in taken and ".." not in tail:
            return name
    digest = hashlib.sha1(str(image).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return f"images/other/{digest}{image.suffix.lower()}"


def _write_page(staging: Path) -> None:
    package = files("evaluation.viewer")
    for name in PAGE_FILES:
        (staging / name).write_bytes(package.joinpath(name).read_bytes())


def _js(obj) -> str:
    """A value as JavaScript: compact JSON (NaN and Infinity are JavaScript globals too)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _facet_columns(rows: list[dict], names: Iterable[str]) -> dict:
    """Per facet its sorted values and each item's index into them (columns, so 100k items stay small)."""
    columns = {}
    for name in names:
        values = sorted({row.get(name, "") for row in rows})
        code = {v: i for i, v in enumerate(values)}
        columns[name] = {"values": values, "codes": [code[row.get(name, "")] for row in rows]}
    return columns


def _write_data(data: Source, folder: Path, progress: bool) -> int:
    folder.mkdir()
    n = len(data.items)
    count = max(1, math.ceil(n / CHUNK))
    digits = max(4, len(str(count - 1)))
    names = FACETS + (("result",) if data.kind == "run" else ())
    index = {"title": data.title, "kind": data.kind, "count": n, "chunk": CHUNK, "page": PAGE, "chunks": count,
             "digits": digits, "facets": _facet_columns(data.facets, names)}
    for k in tqdm(range(count), unit="chunk", desc="write", disable=not progress or n < PROGRESS_MIN):
        atomic_write_text(folder / f"{k:0{digits}d}.js",
                          f"S2RView.chunk({k},{_js(data.items[k * CHUNK:(k + 1) * CHUNK])});\n")
    atomic_write_text(folder / "index.js", f"S2RView.index({_js(index)});\n")
    return count
