"""Rendering with the real bpy at small sizes: labels measured from pixels, COCO masks, composite vs a
whole Blender render, resume after a kill, shards, 3D placement and Cycles."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from blender_scenes.batch import run
from blender_scenes.config import load_preset, parse_design
from blender_scenes.labels import area_of_box, area_of_cell, label_of_box
from blender_scenes.measure import decode_mask
from blender_scenes.plan import plan
from blender_scenes.questions import read_questions
from tests.processes import ROOT, cli, kill_when_rendered, ok

pytestmark = pytest.mark.bpy
SPLITS = ("train", "val", "test")


def scenes_of(root: Path):
    for split in SPLITS:
        for p in sorted((root / "scenes" / split).glob("*.json")):
            yield json.loads(p.read_text())


def dataset_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


def variant(name: str, **changes):
    d = load_preset(name).model_dump(mode="json")
    for key, value in changes.items():
        section, field = key.split("__")
        d[section][field] = value
    return parse_design(d, f"{name} variant")


def test_every_label_is_measured_and_matches_the_plan(demo_dataset):
    cfg = load_preset("demo")
    planned = {s.id: s for s in plan(cfg)}
    n = 0
    for rec in scenes_of(demo_dataset):
        spec = planned[rec["id"]]
        for obj, want in zip(rec["objects"], spec.objects):
            assert obj["area"] == area_of_box(obj["bbox"], rec["width"], rec["height"])
            assert obj["area"] == want.area == area_of_cell(*want.cell, 9, 9)
            assert (obj["shape"], obj["color"], obj["size"]) == (want.shape, want.color, want.size)
            n += 1
        for q in rec["questions"]:
            assert q["answer"] == label_of_box(rec["objects"][0]["bbox"], rec["width"], rec["height"], q["task"])
    assert n == 108   # 54 scenes x (target + 1 distractor)


def test_questions_files_hold_every_scene(demo_dataset):
    for split, n in (("train", 32), ("val", 11), ("test", 11)):
        records = read_questions(demo_dataset / "questions" / f"{split}.jsonl")
        assert len(records) == 4 * n
        for r in records:
            assert (demo_dataset / r.image).is_file()
            if r.task != "open":
                assert r.answer in r.options and len(set(r.options)) == len(r.options)
            else:
                assert r.options == []
        area9 = [r for r in records if r.task == "area9"]
        idx = np.bincount([r.options.index(r.answer) for r in area9], minlength=9)
        assert idx.max() - idx.min() <= 1


def test_coco_masks_match_the_rendered_pixels(demo_dataset):
    coco = COCO(str(demo_dataset / "annotations" / "train.json"))
    assert len(coco.getImgIds()) == 32 and len(coco.getAnnIds()) == 64
    assert {c["name"] for c in coco.loadCats(coco.getCatIds())} == {"square", "circle", "triangle"}
    for rec in scenes_of(demo_dataset):
        if rec["split"] != "train":
            continue
        image = cv2.imread(str(demo_dataset / rec["image"]))[..., ::-1]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=rec["index"]))
        union = np.zeros(image.shape[:2], bool)
        for ann, obj in zip(sorted(anns, key=lambda a: a["id"]), rec["objects"]):
            mask = coco.annToMask(ann).astype(bool)
            assert (mask == decode_mask(obj["segmentation"])).all()
            assert ann["area"] == mask.sum() == obj["visible_pixels"]
            ys, xs = np.nonzero(mask)
            assert [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1] == ann["bbox"]
            # the mask's interior shows exactly the object's colour; its anti-aliased rim is not background
            interior = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            assert interior.any() and (image[interior] == obj["rgb"]).all()
            assert image[mask].max(1).min() > 0
            union |= mask
        # far from every mask, the image is background
        far = cv2.dilate(union.astype(np.uint8), np.ones((5, 5), np.uint8)) == 0
        assert (image[far] == 0).all()


def test_png_has_no_time_stamps(demo_dataset):
    data = (demo_dataset / "images" / "train" / "000000.png").read_bytes()
    assert b"tEXt" not in data and b"tIME" not in data and b"Date" not in data


def test_composite_equals_a_whole_blender_render():
    """The flat fast path composites per-object sprites; Blender rendering the whole scene gives the same
    index map exactly and the same image within 1/255 at anti-aliased edges."""
    from blender_scenes.render.worker import build_renderer

    cfg = load_preset("civet-distractors")
    renderer = build_renderer(cfg)
    scenes = plan(cfg)[:: 997][:5]
    for spec in scenes:
        a, ia, pa = renderer.render(spec)
        b, ib, pb = renderer.render_full(spec)
        assert pa == pb
        assert (ia == ib).all()
        diff = np.abs(a.astype(int) - b.astype(int))
        assert diff.max() <= 1
        assert (diff > 0).sum() <= 20   # a handful of edge pixels, out of 336 x 336


def test_resume_after_kill_equals_an_uninterrupted_run(tmp_path):
    # whole renders (no compositing) make each scene slow enough to kill the job in the middle
    cfg_text = (ROOT / "blender_scenes/presets/demo.toml").read_text()
    cfg_text = cfg_text.replace('samples = 8', 'samples = 8\ncomposite = false')
    config = tmp_path / "demo-whole.toml"
    config.write_text(cfg_text)
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    ok("render", config, "--out", ref, "--quiet")
    done = kill_when_rendered(cli("render", config, "--out", killed, "--workers", "2", "--quiet"), killed, 15, 120)
    assert 15 <= done < 54, done

    again = cli("render", config, "--out", killed, "--quiet")   # without --resume: refused
    out = again.communicate(timeout=60)[0]
    assert again.returncode == 2 and "use --resume" in out
    out = ok("render", config, "--out", killed, "--resume", "--quiet")
    assert f"({done} already done)" in out
    assert not list(killed.rglob(".*.tmp"))   # what the killed run was writing is gone
    a, b = dataset_files(ref), dataset_files(killed)
    assert a.keys() == b.keys()
    assert all(a[k] == b[k] for k in a), [k for k in a if a[k] != b[k]][:5]


def test_shards_and_merge_equal_one_run(tmp_path, demo_dataset):
    cfg = load_preset("demo")
    out = tmp_path / "sharded"
    for k in range(3):
        run(cfg, out, shard=f"{k}/3", progress=False, resume=True)
    assert not (out / "questions").exists()   # shards leave merging to `merge`
    from blender_scenes.batch import merge_dataset
    status = merge_dataset(out)
    assert all(v["status"] == "complete" for v in status.values())
    a, b = dataset_files(demo_dataset), dataset_files(out)
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)


@pytest.mark.timeout(240)
def test_recycled_3d_workers_finish_with_the_same_files(tmp_path):
    """3D workers are replaced every `workers_restart_every` scenes (bpy leaks); the job must neither hang
    nor change: the files equal those of one long-lived worker."""
    small = dict(image__width=64, image__height=64)
    run(variant("solid", **small, render__workers_restart_every=2), tmp_path / "a", limit=2, workers=2,
        progress=False)
    run(variant("solid", **small), tmp_path / "b", limit=2, workers=1, progress=False)
    a, b = dataset_files(tmp_path / "a"), dataset_files(tmp_path / "b")
    assert len(a) == 6 + 6 + 3 + 3 + 1 and a.keys() == b.keys()   # images, scenes, COCO, questions, plan
    assert all(a[k] == b[k] for k in a if k.startswith("images")), "pixels differ"
    # the configs differ in workers_restart_every only
    strip = lambda blob: {k: v for k, v in json.loads(blob).items() if k not in ("config_hash", "config")}  # noqa: E731
    assert all(strip(a[k]) == strip(b[k]) for k in a if k.startswith("scenes"))


def test_other_config_in_same_folder_is_refused(tmp_path):
    from blender_scenes.errors import InputError
    run(load_preset("demo"), tmp_path, limit=1, progress=False)
    with pytest.raises(InputError, match="config_hash"):
        run(variant("demo", image__width=128), tmp_path, limit=1, progress=False, resume=True)


def test_3d_workbench_places_objects_in_their_areas(tmp_path):
    cfg = variant("solid", image__width=160, image__height=160)
    run(cfg, tmp_path, limit=3, progress=False)
    recs = list(scenes_of(tmp_path))
    assert len(recs) == 9
    for rec in recs:
        assert rec["render"]["style"] == "3d" and "matrix_world" in rec["render"]["camera"]
        for obj in rec["objects"]:
            x, y, w, h = obj["bbox"]
            assert obj["area"] == area_of_box(obj["bbox"], 160, 160) == area_of_cell(*obj["cell"], 9, 9)
            assert obj["visible_share"] >= cfg.render.min_visible
            assert x >= 1 and y >= 1 and x + w <= 159 and y + h <= 159
            assert obj["material"] in ("rubber", "metal") and len(obj["pose"]["location"]) == 3
        image = cv2.imread(str(tmp_path / rec["image"]))
        assert image.shape == (160, 160, 3)
        mask = decode_mask(rec["objects"][0]["segmentation"])
        assert np.abs(image[mask].mean(0) - image[~mask].mean(0)).max() > 5


def test_cycles_renders_a_small_scene(tmp_path):
    cfg = variant("clevr", image__width=96, image__height=96, render__samples=4)
    run(cfg, tmp_path, limit=1, splits=["train"], progress=False)
    (rec,) = scenes_of(tmp_path)
    assert rec["render"]["engine"] == "cycles" and len(rec["render"]["lights"]) == 3
    target = rec["objects"][0]
    assert target["area"] == area_of_box(target["bbox"], 96, 96)
    image = cv2.imread(str(tmp_path / rec["image"]))[..., ::-1]
    mask = decode_mask(target["segmentation"])
    # the target's pixels differ from the ground around it
    assert np.abs(image[mask].mean(0) - image[~mask].mean(0)).max() > 5


@pytest.mark.slow
def test_eevee_renders_a_small_scene(tmp_path):
    # EEVEE compiles its shaders on the CPU here (~40 s for the first scene): not in the default run
    cfg = variant("clevr", image__width=64, image__height=64, render__samples=4, render__engine="eevee")
    run(cfg, tmp_path, limit=1, splits=["train"], progress=False)
    (rec,) = scenes_of(tmp_path)
    target = rec["objects"][0]
    assert rec["render"]["engine"] == "eevee"
    assert target["area"] == area_of_box(target["bbox"], 64, 64) == area_of_cell(*target["cell"], 9, 9)
