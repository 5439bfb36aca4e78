"""Relations between two objects (issue 13), synthetic side: the design config, the planner (balanced answers,
pairs separated by construction), real renders whose every answer the masks (pycocotools) or the depth pass give,
and the audit that passes them and fails a tampered answer or depth pass."""
from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from blender_scenes.audit.run import audit_path
from blender_scenes.batch import merge_dataset, run
from blender_scenes.config import load_design, load_preset, parse_design
from blender_scenes.errors import InputError
from blender_scenes.labels import DEPTH_MARGIN, LABELS, closer_of, relation_of_boxes
from blender_scenes.measure import DEPTH_UNIT, decode_mask
from blender_scenes.plan import description, plan
from blender_scenes.questions import read_questions
from blender_scenes.relations import keeps_relation

FLAT = """
name = "relations-small"
seed = 1
[image]
width = 96
height = 96
[render]
style = "flat"
[factors]
shapes = ["square", "circle", "triangle"]
sizes = { large = 0.86, small = 0.5 }
[factors.colors]
red = [255, 0, 0]
green = [0, 255, 0]
[design]
kind = "balanced"
scenes = 48
[distractors]
count = 1
[splits]
fractions = { train = 0.5, val = 0.5 }
[questions]
tasks = ["left_right", "above_below"]
"""

SOLID = """
name = "depth-small"
[render]
style = "3d"
[factors]
shapes = ["cube", "sphere"]
sizes = { large = 0.9 }
[factors.colors]
red = [173, 35, 35]
blue = [42, 75, 215]
[questions]
tasks = ["depth"]
"""


def small_3d() -> dict:
    """relations-3d at 128 px: 2 shapes x 2 colours x 1 size x 6 answers, once (24 scenes, all in train)."""
    d = load_preset("relations-3d").model_dump(mode="json")
    d["image"].update(width=128, height=128)
    d["factors"].update(shapes=["cube", "sphere"], colors={"red": [173, 35, 35], "blue": [42, 75, 215]},
                        sizes={"large": 0.9})
    d["design"] = {"kind": "balanced", "scenes": 24}
    d["splits"] = {"fractions": {"train": 1.0}}
    return d


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "design.toml"
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------ config

@pytest.mark.parametrize("text, field, words", [
    (FLAT.replace('"above_below"]', '"above_below", "depth"]'), "questions.tasks", "only 3d designs"),
    (FLAT.replace('"above_below"]', '"area9"]'), "questions.tasks", "cannot be mixed"),
    (FLAT + "depth_margin = 0.2\n", "questions.depth_margin", "only for designs that ask 'depth'"),
    (SOLID + "depth_margin = 1.5\n", "questions.depth_margin", "less than 1"),
    (FLAT.replace('"above_below"]', '"near_far"]'), "questions.tasks[1]", "'left_right'"),
])
def test_bad_relation_config_names_file_and_field(tmp_path, text, field, words):
    path = write(tmp_path, text)
    with pytest.raises(InputError) as err:
        load_design(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: field '{field}'"), msg
    assert words in msg and "\n" not in msg


def test_depth_margin_defaults_and_leaves_older_configs_unchanged():
    cfg = load_preset("relations-3d")
    assert cfg.relations and cfg.depth_margin == DEPTH_MARGIN
    assert "depth_margin" not in cfg.model_dump(mode="json")["questions"]   # so area designs hash as before
    assert not load_preset("demo").relations


# ------------------------------------------------------------------------------------------ plan

@pytest.mark.parametrize("preset", ["relations", "relations-3d"])
def test_relation_plan_balances_answers_and_separates_pairs_by_construction(preset):
    cfg = load_preset(preset)
    scenes = plan(cfg)
    describe = cfg.questions.describe
    answers, options = Counter(), Counter()
    for s in scenes:
        task, answer = s.relation["task"], s.relation["answer"]
        answers[s.split, task, answer] += 1
        options[s.split, task, s.option_index[task]] += 1
        target, anchor, *distractors = s.objects
        assert (target.role, anchor.role) == ("target", "anchor") and list(s.option_index) == [task]
        assert keeps_relation(task, answer, target.cell, anchor.cell, cfg.grid.rows, cfg.grid.cols)
        names = {description(target, describe), description(anchor, describe)}
        assert len(names) == 2 and all(description(d, describe) not in names for d in distractors)
        assert len({o.cell for o in s.objects}) == len(s.objects)
    for split in {s.split for s in scenes}:
        for task in cfg.questions.tasks:
            per_answer = [n for (sp, t, _), n in answers.items() if (sp, t) == (split, task)]
            per_option = [n for (sp, t, _), n in options.items() if (sp, t) == (split, task)]
            assert len(per_answer) == 2 and max(per_answer) - min(per_answer) <= 1, (split, task, per_answer)
            assert len(per_option) == 2 and max(per_option) - min(per_option) <= 1, (split, task, per_option)
    assert len(scenes) == (1120 if preset == "relations" else 768)


def test_area_plans_carry_no_relation_key():
    assert all("relation" not in s.to_json() for s in plan(load_preset("demo")))


# ------------------------------------------------------------------------------------------ renders

def mask_boxes(coco: COCO, image_id: int) -> dict[int, list[float]]:
    """object id -> box of its mask, decoded with pycocotools from the COCO file (not the recorded bbox)."""
    out = {}
    for a in coco.loadAnns(coco.getAnnIds(imgIds=[image_id])):
        rle = a["segmentation"]
        rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
        out[a["id"] % 100] = [float(v) for v in mask_utils.toBbox(rle)]
    return out


def masks(coco: COCO, image_id: int) -> dict[int, np.ndarray]:
    return {a["id"] % 100: coco.annToMask(a).astype(bool) for a in coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))}


@pytest.fixture(scope="module")
def flat_relations(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("relations-flat")
    out = d / "ds"
    run(load_design(write(d, FLAT)), out, progress=False)
    return out


@pytest.fixture(scope="module")
def solid_relations(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("relations-3d") / "ds"
    run(parse_design(small_3d(), "relations-3d small"), out, progress=False)
    return out


def check_answers_balanced(questions: list, tasks: list[str]) -> None:
    for task in tasks:
        mine = [q for q in questions if q.task == task]
        per = Counter(q.answer for q in mine) if task != "depth" else \
            Counter(q.answer == q.options[0] for q in mine)
        where = Counter(q.options.index(q.answer) for q in mine)
        assert len(per) == 2 and max(per.values()) - min(per.values()) <= 1, (task, per)
        assert max(where.values()) - min(where.values()) <= 1, (task, where)


@pytest.mark.bpy
def test_flat_relation_answers_are_the_relation_of_the_rendered_masks(flat_relations):
    for split in ("train", "val"):
        coco = COCO(str(flat_relations / "annotations" / f"{split}.json"))
        by_file = {img["file_name"]: img["id"] for img in coco.dataset["images"]}
        questions = read_questions(flat_relations / "questions" / f"{split}.jsonl")
        assert len(questions) == 24
        for q in questions:
            boxes = mask_boxes(coco, by_file[q.image])
            t, a = boxes[q.target["object_id"]], boxes[q.anchor["object_id"]]
            assert (q.target["bbox"], q.anchor["bbox"]) == (t, a)
            assert q.answer == relation_of_boxes(t, a, q.task) and q.answer in LABELS[q.task]
            assert sorted(q.options) == sorted(LABELS[q.task])
            assert q.question == f"Where is the {q.target['color']} {q.target['category']} relative to the " \
                                 f"{q.anchor['color']} {q.anchor['category']}?"
            assert set(q.anchor) == set(q.target)
        check_answers_balanced(questions, ["left_right", "above_below"])


@pytest.mark.bpy
def test_3d_depth_answers_are_the_closer_median_of_the_depth_pass(solid_relations):
    coco = COCO(str(solid_relations / "annotations" / "train.json"))
    by_file = {img["file_name"]: img["id"] for img in coco.dataset["images"]}
    questions = read_questions(solid_relations / "questions" / "train.jsonl")
    assert Counter(q.task for q in questions) == {"left_right": 8, "above_below": 8, "depth": 8}
    for q in questions:
        m = masks(coco, by_file[q.image])
        t, a = m[q.target["object_id"]], m[q.anchor["object_id"]]
        if q.task != "depth":
            assert q.answer == relation_of_boxes(mask_boxes(coco, by_file[q.image])[q.target["object_id"]],
                                                 mask_boxes(coco, by_file[q.image])[q.anchor["object_id"]], q.task)
            continue
        scene = json.loads((solid_relations / "scenes" / "train" / f"{Path(q.image).stem}.json").read_text())
        depth = cv2.imread(str(solid_relations / scene["depth_file"]), cv2.IMREAD_UNCHANGED)
        assert depth.dtype == np.uint16 and depth.shape == t.shape
        dt, da = (float(np.median(depth[x])) * DEPTH_UNIT for x in (t, a))
        closer = closer_of(dt, da)
        assert closer is not None
        names = [f"{q.target['color']} {q.target['category']}", f"{q.anchor['color']} {q.anchor['category']}"]
        assert q.answer == names[closer] and sorted(q.options) == sorted(names)
        assert q.question == f"Which is closer to the camera, the {q.options[0]} or the {q.options[1]}?"
        assert scene["objects"][0]["depth"] == pytest.approx(dt) and scene["objects"][1]["depth"] == pytest.approx(da)
    check_answers_balanced(questions, ["left_right", "above_below", "depth"])


# ------------------------------------------------------------------------------------------ audit

def copy_of(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("audit"))
    return dst


def relation_checks(report: dict) -> dict[str, bool]:
    return {f"{c['split']} {c['what']}": c["ok"] for c in report["balance"] if c["what"].startswith("relation")}


@pytest.mark.bpy
@pytest.mark.parametrize("which", ["flat", "3d"])
def test_audit_passes_relation_datasets_and_reports_answer_balance(which, flat_relations, solid_relations, tmp_path):
    ds = flat_relations if which == "flat" else solid_relations
    report = audit_path(ds, out=tmp_path / "r")
    assert report["headline"]["failures"] == 0, report["findings"][:5]
    assert report["headline"]["labels_verified"] == report["headline"]["targets"]
    checks = relation_checks(report)
    tasks = ["left_right", "above_below"] + (["depth"] if which == "3d" else [])
    splits = ["train", "val"] if which == "flat" else ["train"]
    assert checks == {f"{s} relation answers ({t})": True for s in splits for t in tasks}


@pytest.mark.bpy
def test_audit_fails_a_flipped_relation_answer(flat_relations, tmp_path):
    ds = copy_of(flat_relations, tmp_path)
    path = ds / "scenes" / "train" / "000003.json"
    rec = json.loads(path.read_text())
    q = rec["questions"][0]
    q["answer"] = next(o for o in q["options"] if o != q["answer"])
    path.write_text(json.dumps(rec))
    report = audit_path(ds, out=tmp_path / "r")
    msgs = [f["message"] for f in report["findings"] if f["kind"] == "labels"]
    assert any(f"question {q['id']}: answer {q['answer']!r}, the two masks give" in m for m in msgs), msgs
    assert report["headline"]["labels_verified"] == report["headline"]["targets"] - 1


@pytest.mark.bpy
def test_audit_fails_a_tampered_depth_pass(solid_relations, tmp_path):
    ds = copy_of(solid_relations, tmp_path)
    scene = next(json.loads(p.read_text()) for p in sorted((ds / "scenes" / "train").glob("*.json"))
                 if json.loads(p.read_text())["relation"]["task"] == "depth")
    path = ds / scene["depth_file"]
    depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    closer = 0 if scene["relation"]["answer"] == "target" else 1
    # the closer object now lies far behind the other: its depth answer is wrong by the depth pass
    far = int(depth.max()) * 2
    depth[decode_mask(scene["objects"][closer]["segmentation"])] = far
    cv2.imwrite(str(path), depth)
    report = audit_path(ds, out=tmp_path / "r")
    msgs = [f["message"] for f in report["findings"] if f["kind"] == "labels" and scene["id"] in f["file"]]
    assert any("the depth pass gives" in m for m in msgs), msgs
    assert any(f"depth {scene['objects'][closer]['depth']} but the depth pass gives" in m for m in msgs), msgs
    assert report["headline"]["failures"] >= 2


@pytest.mark.bpy
def test_3d_relation_shards_and_merge_equal_one_run(solid_relations, tmp_path):
    """Re-placements and the depth pass depend on the scene alone: two shards, merged, give the same bytes."""
    cfg = parse_design(small_3d(), "relations-3d small")
    out = tmp_path / "sharded"
    for k in range(2):
        run(cfg, out, shard=f"{k}/2", progress=False)
    merge_dataset(out)

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
                if p.is_file() and p.name != "manifest.json" and "audit" not in p.parts}
    a, b = files(solid_relations), files(out)
    assert any(k.startswith("depth/") for k in a) and a.keys() == b.keys() and all(a[k] == b[k] for k in a)


@pytest.mark.slow
@pytest.mark.bpy
@pytest.mark.parametrize("preset", ["relations", "relations-3d"])
def test_shipped_relation_presets_render_whole_and_pass_the_strict_audit(preset, tmp_path):
    """The shipped presets at their own size, every split: the small test designs above do not reach every
    pair of cells (a large object on the outer ring of the 3D grid once could not be placed)."""
    run(load_preset(preset), tmp_path / "ds", workers=2, progress=False)
    report = audit_path(tmp_path / "ds", out=tmp_path / "r")
    assert report["headline"]["failures"] == 0, report["findings"][:5]
    assert report["headline"]["labels_verified"] == report["headline"]["targets"] == len(plan(load_preset(preset)))


@pytest.mark.bpy
def test_an_unplaceable_3d_scene_is_one_error_line(tmp_path):
    """Objects far larger than their cells: no placement is found, and the CLI says so in one line, exit 2."""
    import subprocess
    import sys

    d = small_3d()
    d["image"].update(width=64, height=64)
    d["factors"]["sizes"] = {"large": 4.0}
    design = tmp_path / "huge.yaml"   # JSON is YAML
    design.write_text(json.dumps(d))
    done = subprocess.run([sys.executable, "-m", "scenes2real", "render", str(design), "--out", str(tmp_path / "ds"),
                           "--limit", "1"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: scene ") and "no placement after" in lines[-1], done.stderr[-2000:]
    assert "Traceback" not in done.stderr
