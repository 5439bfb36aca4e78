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
from .measure import Measured
from .plan import ObjectSpec, SceneSpec
from .prompts import template_fields
from .questions import describe, options_with_answer, question_text, write_jsonl


def display_name(cfg: DesignFile, shape: str) -> str:
    """The name a question uses for a shape (the asset's display name)."""
    return asset_display_name(shape, cfg.assets)


def scene_record(cfg: DesignFile, planned: SceneSpec, placed: SceneSpec, poses: list[dict],
                 measured: list[Measured], renderer: dict, image: str) -> dict:
    """Everything about one rendered scene: its fully resolved spec and what the pixels showed."""
    W, H = cfg.image.width, cfg.image.height
    objects = []
    for k, (plan_obj, obj, pose, m) in enumerate(zip(planned.objects, placed.objects, poses, measured)):
        if m.area != obj.area:   # never keep a wrong label: the renderer must have placed it right
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
    record = {
        "id": placed.id, "index": placed.index, "split": placed.split, "subset": placed.subset,
        "variation": placed.variation, "image": image, "width": W, "height": H,
        "design": cfg.name, "config_hash": cfg.digest(), "render": renderer,
        "placement_attempts": poses[0].get("attempts", 1), "objects": objects,
        "option_index": dict(placed.option_index),
        "config": cfg.model_dump(mode="json"),   # with the fields above, the whole recipe of this scene
    }
    record["questions"] = questions_of_scene(cfg, placed, record)
    return record


def spec_of_record(record: dict) -> SceneSpec:
    """The planned scene a record was rendered from (`render --scene` re-renders it from this alone)."""
    grid = record["config"]["grid"]
    objects = tuple(ObjectSpec(role=o["role"], shape=o["shape"], color=o["color"], size=o["size"],
                               material=o["material"], cell=tuple(o["planned_cell"]),
                               area=area_of_cell(*o["planned_cell"], grid["rows"], grid["cols"]))
                    for o in record["objects"])
    return SceneSpec(index=record["index"], id=record["id"], split=record["split"], subset=record["subset"],
                     variation=record["variation"], objects=objects, option_index=dict(record["option_index"]))


def questions_of_scene(cfg: DesignFile, spec: SceneSpec, record: dict) -> list[dict]:
    target = record["objects"][0]
    attrs = {"size": target["size"], "color": target["color"], "material": target["material"],
             "shape": target["display"]}
    text = question_text(describe(attrs, cfg.questions.describe))
    out = []
    for task in cfg.questions.tasks:
        answer = label_of_box(target["bbox"], record["width"], record["height"], task)
        rng = random.Random(f"{cfg.seed}:options:{spec.index}:{task}")
        options = options_with_answer(task, answer, spec.option_index[task], rng)
        out.append({
            "id": f"{spec.id}-{task}", "image": record["image"], "task": task, "question": text,
            "options": options, "answer": answer,
            "target": {"bbox": target["bbox"], "category": target["display"], "shape": target["shape"],
                       "color": target["color"], "size": target["size"], "material": target["material"],
                       "cell": target["cell"], "area": target["area"], "object_id": target["id"]},
            "source": "synthetic", "split": spec.split,
            **template_fields(options, cfg.questions.template, cfg.questions.open_template),
        })
    return out


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
        records = []
        for sid in ids:
            path = layout.scene(split, sid)
            if path.is_file() and layout.image(split, sid).is_file():
                records.append(read_scene(path))
        atomic_write_json(layout.annotations(split), coco_of_scenes(cfg, records))
        write_jsonl(layout.questions(split), (q for r in records for q in r["questions"]))
        status[split] = {"planned": len(ids), "rendered": len(records),
                         "status": "complete" if len(records) == len(ids) else "partial"}
    return status
