"""Measured scenes -> annotations: the per-scene JSON record, its question records, COCO instances per
split (pycocotools RLE masks) and the merge that builds split files from per-scene JSON. No bpy."""
from __future__ import annotations

import json
import random
from pathlib import Path

from .assets import display_name as asset_display_name
from .config import DesignFile
from .dataset import DatasetLayout
from .errors import InputError
from .files import atomic_write_json
from .labels import area_of_cell, label_of_box
from .measure import Measured, measured_relation
from .plan import ObjectSpec, SceneSpec, path_problem
from .prompts import template_fields
from .questions import describe, options_with_answer, question_text, relation_question_text, write_jsonl


def display_name(cfg: DesignFile, shape: str) -> str:
    """The name a question uses for a shape (the asset's display name)."""
    return asset_display_name(shape, cfg.assets)


def scene_record(cfg: DesignFile, planned: SceneSpec, placed: SceneSpec, poses: list[dict],
                 measured: list[Measured], renderer: dict, image: str, depths: list[float | None] | None = None,
                 depth_file: str | None = None) -> dict:
    """Everything about one rendered scene: its fully resolved spec and what the pixels showed. Depth designs
    also give each object's median visible depth (metres, from the stored depth pass `depth_file`)."""
    W, H = cfg.image.width, cfg.image.height
    objects = []
    for k, (plan_obj, obj, pose, m) in enumerate(zip(planned.objects, placed.objects, poses, measured)):
        if m.area != obj.area and not placed.relation:   # never keep a wrong label (relations promise no area)
            raise RuntimeError(f"scene {placed.id}: object {k + 1} ({obj.color} {obj.shape}) rendered in "
                               f"{m.area!r}, planned {obj.area!r}")
        pose = {key: pose[key] for key in ("location", "rotation_euler", "scale")}
        objects.append({
            "id": k + 1, "role": obj.role, "shape": obj.shape, "display": display_name(cfg, obj.shape),
            "color": obj.color, "rgb": list(cfg.factors.colors[obj.color]), "size": obj.size,
            "size_value": cfg.factors.sizes[obj.size], "material": obj.material,
            "material_params": cfg.factors.materials[obj.material].model_dump() if obj.material else None,
            "planned_cell": list(plan_obj.cell), "cell": list(obj.cell), "area": m.area, "pose": pose,
            "bbox": list(m.bbox), "visible_pixels": m.pixels,
            "visible_share": poses[k].get("visible_share", 1.0), "segmentation": m.rle,
        })
        if depths is not None:
            objects[-1]["depth"] = depths[k]
    record = {
        "id": placed.id, "index": placed.index, "split": placed.split, "subset": placed.subset,
        "variation": placed.variation, "image": image, "width": W, "height": H,
        "design": cfg.name, "config_hash": cfg.digest(), "render": renderer,
        "placement_attempts": poses[0].get("attempts", 1), "objects": objects,
        "option_index": dict(placed.option_index),
        "config": cfg.to_json(),   # with the fields above, the whole recipe of this scene
    }
    if placed.relation:
        record["relation"] = dict(placed.relation)
        got = relation_of_record(cfg, record)
        if got != placed.relation["answer"]:   # never keep a wrong answer: the renderer must have placed it right
            raise RuntimeError(f"scene {placed.id}: {placed.relation['task']} measured {got!r} from the pixels, "
                               f"planned {placed.relation['answer']!r}")
    if depth_file:
        record["depth_file"] = depth_file
    record["questions"] = questions_of_scene(cfg, placed, record)
    return record


def spec_of_record(record: dict, source: str = "a scene record") -> SceneSpec:
    """The planned scene a record was rendered from (`render --scene` re-renders it from this alone); `source`
    names the record in errors."""
    problem = path_problem(record.get("id"), record.get("split"))
    if problem:   # they name the files a re-render writes
        raise InputError(f"{source}: field '{problem[0]}': {problem[1]}")
    try:
        grid = record["config"]["grid"]
        objects = tuple(ObjectSpec(role=o["role"], shape=o["shape"], color=o["color"], size=o["size"],
                                   material=o["material"], cell=tuple(o["planned_cell"]),
                                   area=area_of_cell(*o["planned_cell"], grid["rows"], grid["cols"]))
                        for o in record["objects"])
        return SceneSpec(index=record["index"], id=record["id"], split=record["split"], subset=record["subset"],
                         variation=record["variation"], objects=objects, option_index=dict(record["option_index"]),
                         relation=record.get("relation"))
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"{source}: not a scene record ({type(err).__name__}: {err})") from None


def object_fields(o: dict) -> dict:
    """What a question record says of its target (and anchor): box, category and attributes, object id."""
    return {"bbox": o["bbox"], "category": o["display"], "shape": o["shape"], "color": o["color"], "size": o["size"],
            "material": o["material"], "cell": o["cell"], "area": o["area"], "object_id": o["id"]}


def name_of(cfg: DesignFile, o: dict) -> str:
    """How a question names a recorded object ('red star'): the design's described attributes."""
    attrs = {"size": o["size"], "color": o["color"], "material": o["material"], "shape": o["display"]}
    return describe(attrs, cfg.questions.describe)


def relation_of_record(cfg: DesignFile, record: dict) -> str | None:
    """The relation its pixels give a relation scene's pair (the planner's terms: depth gives a role)."""
    target, anchor = record["objects"][:2]
    return measured_relation(record["relation"]["task"], target["bbox"], anchor["bbox"], target.get("depth"),
                             anchor.get("depth"), cfg.depth_margin)


def questions_of_scene(cfg: DesignFile, spec: SceneSpec, record: dict) -> list[dict]:
    if spec.relation:
        return [relation_question(cfg, spec, record)]
    target = record["objects"][0]
    text = question_text(name_of(cfg, target))
    out = []
    for task in cfg.questions.tasks:
        answer = label_of_box(target["bbox"], record["width"], record["height"], task)
        rng = random.Random(f"{cfg.seed}:options:{spec.index}:{task}")
        options = options_with_answer(task, answer, spec.option_index[task], rng)
        out.append({
            "id": f"{spec.id}-{task}", "image": record["image"], "task": task, "question": text,
            "options": options, "answer": answer,
            "target": object_fields(target), "source": "synthetic", "split": spec.split,
            **template_fields(options, cfg.questions.template, cfg.questions.open_template),
        })
    return out


def relation_question(cfg: DesignFile, spec: SceneSpec, record: dict) -> dict:
    """The one question of a relation scene, its answer from the pixels. Depth's options are the two names,
    the correct one at the planned (balanced) position, and the question says them in that order."""
    task = spec.relation["task"]
    target, anchor = record["objects"][:2]
    names = [name_of(cfg, target), name_of(cfg, anchor)]
    measured = relation_of_record(cfg, record)
    correct = spec.option_index[task]
    if task == "depth":
        answer = names[("target", "anchor").index(measured)]
        options = [n for n in names if n != answer]
        options.insert(correct, answer)
        text = relation_question_text(task, *options)
    else:
        answer = measured
        options = options_with_answer(task, answer, correct, random.Random(f"{cfg.seed}:options:{spec.index}:{task}"))
        text = relation_question_text(task, *names)
    return {
        "id": f"{spec.id}-{task}", "image": record["image"], "task": task, "question": text, "options": options,
        "answer": answer, "target": object_fields(target), "anchor": object_fields(anchor), "source": "synthetic",
        "split": spec.split, **template_fields(options, cfg.questions.template, cfg.questions.open_template),
    }

def categories(cfg: DesignFile) -> list[dict]:
    return [{"id": i + 1, "name": display_name(cfg, s), "supercategory": "shape", "shape": s}
            for i, s in enumerate(cfg.factors.shapes)]


def coco_of_scenes(cfg: DesignFile, records: list[dict]) -> dict:
    """COCO instances: one image per scene, one annotation per object (RLE mask from the index pass)."""
    cat_id = {c["shape"]: c["id"] for c in categories(cfg)}
    images, annotations = [], []
    for r in records:
        images.append({"id": r["index"], "file_name": r["image"], "width": r["width"], "height": r["height"],
                       "scene_id": r["id"]})
        for o in r["objects"]:
            annotations.append({
                "id": r["index"] * 100 + o["id"], "image_id": r["index"], "category_id": cat_id[o["shape"]],
                "bbox": o["bbox"], "area": o["visible_pixels"], "segmentation": o["segmentation"],
                "iscrowd": 0, "color": o["color"], "size": o["size"], "material": o["material"],
                "area_label": o["area"], "role": o["role"]})
    return {"info": {"description": f"scenes2real {cfg.name}", "version": cfg.digest()},
            "licenses": [], "images": images, "annotations": annotations, "categories": categories(cfg)}


def read_scene(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not valid JSON ({err}); re-render it with --resume after deleting it") from None


def merge(layout: DatasetLayout, cfg: DesignFile, expected: dict[str, list[str]]) -> dict[str, dict]:
    """Build annotations/{split}.json and questions/{split}.jsonl from the per-scene JSON files.

    `expected` maps each split to the scene ids the job planned; returns counts and status per split."""
    status = {}
    for split, ids in expected.items():
        on_disk = layout.rendered(split)
        records = [read_scene(layout.scene(split, sid)) for sid in ids if sid in on_disk]
        atomic_write_json(layout.annotations(split), coco_of_scenes(cfg, records))
        write_jsonl(layout.questions(split), (q for r in records for q in r["questions"]))
        status[split] = {"planned": len(ids), "rendered": len(records),
                         "status": "complete" if len(records) == len(ids) else "partial"}
    return status
