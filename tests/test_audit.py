"""`scenes2real audit` on real renders: an intact dataset passes --strict; a deleted image, an edited answer,
a truncated scene JSON and a leaked held-out pair each fail it by name; an unbalanced split is reported with
the ratio counted here independently; a question file is audited alone; the HTML report renders in Chromium."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from blender_scenes.audit.balance import judge, within_one_bound
from blender_scenes.batch import run
from blender_scenes.config import load_design, load_preset
from blender_scenes.labels import area_of_box
from scenes2real.cli import cli

HELDOUT_DESIGN = """
name = "heldout-test"
seed = 3
[image]
width = 96
height = 96
[grid]
rows = 3
cols = 3
[factors]
shapes = ["square", "circle"]
sizes = { large = 0.8 }
[factors.colors]
red = [255, 0, 0]
green = [0, 255, 0]
[design]
kind = "exhaustive"
[[design.subsets]]
name = "seen"
colors = ["red"]
split = { train = 0.75, val = 0.25 }
[[design.subsets]]
name = "unseen"
colors = ["green"]
split = "test"
[distractors]
count = 0
variations = 2   # each target twice: identical images, listed (within a split, not a failure)
[splits]
heldout = ["shape", "color"]
"""


@pytest.fixture(scope="module")
def demo(demo_dataset) -> Path:
    """The session's demo render (tests/conftest.py); read only: audits write into --out or copies."""
    return demo_dataset


@pytest.fixture(scope="module")
def heldout(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("audit-heldout")
    (d / "design.toml").write_text(HELDOUT_DESIGN)
    out = d / "ds"
    run(load_design(d / "design.toml"), out, progress=False)
    return out


def copy_of(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("audit"))
    return dst


def audit(path: Path, *args: str):
    res = CliRunner().invoke(cli, ["audit", str(path), *args], catch_exceptions=False)
    report_dir = Path(args[args.index("--out") + 1]) if "--out" in args else path / "audit"
    report = json.loads((report_dir / "report.json").read_text()) if (report_dir / "report.json").is_file() else None
    return res, report


def scene_files(ds: Path, split: str) -> list[Path]:
    return sorted((ds / "scenes" / split).glob("*.json"))


# ------------------------------------------------------------------------------------------ intact data

@pytest.mark.bpy
def test_intact_demo_passes_strict_and_counts_match_the_files(demo, tmp_path):
    res, report = audit(demo, "--strict", "--out", str(tmp_path / "r"))
    assert res.exit_code == 0, res.output
    h = report["headline"]
    assert h["failures"] == 0 and h["labels_verified_share"] == 1.0
    for split in ("train", "val", "test"):
        recs = [json.loads(p.read_text()) for p in scene_files(demo, split)]
        # recount independently: the area of each target's recorded box by the one rule
        areas = Counter(area_of_box(r["objects"][0]["bbox"], r["width"], r["height"]) for r in recs)
        counted = report["splits"][split]["counts"]["targets"]["area"]["counts"]
        assert {k: v for k, v in counted.items() if v} == dict(areas)
        shapes = Counter(r["objects"][0]["shape"] for r in recs)
        assert report["splits"][split]["counts"]["targets"]["shape"]["counts"] == dict(shapes) | {
            k: 0 for k in ("square", "circle", "triangle") if k not in shapes}
        assert report["splits"][split]["labels"]["verified"] == len(recs)
    for name in ("report.md", "report.html", "figures/areas.png", "figures/samples.png"):
        assert (tmp_path / "r" / name).is_file()
    # mask fill per shape: a square fills its box, a circle about pi/4 of it
    fill = report["splits"]["train"]["fill"]
    assert fill["square"]["min"] > 0.95 and 0.7 < fill["circle"]["mean"] < 0.85
    # the balanced design's promise over all splits: every level and pair within one
    design = [c for c in report["balance"] if c["scope"].startswith("design")]
    assert design and all(c["ok"] for c in design)


@pytest.mark.bpy
def test_the_stored_plan_is_audited_and_a_differing_replan_is_only_noted(demo, tmp_path, monkeypatch):
    """The audit checks the disk against plan.json, not against what today's code would plan: a dataset made
    by another version still passes, with an informational note."""
    from blender_scenes.audit import source

    today = source.plan
    monkeypatch.setattr(source, "plan", lambda cfg: list(reversed(today(cfg))))
    res, report = audit(demo, "--strict", "--out", str(tmp_path / "r"))
    assert res.exit_code == 0, res.output
    notes = [f for f in report["findings"] if f["file"] == "plan.json"]
    assert len(notes) == 1 and not notes[0]["strict"] and "plan this design differently" in notes[0]["message"]


@pytest.mark.bpy
def test_exhaustive_heldout_design_has_ratio_one_where_a_split_holds_a_whole_subset(heldout, tmp_path):
    res, report = audit(heldout, "--strict", "--json", "--out", str(tmp_path / "r"))
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["passed"] is True
    test_checks = [c for c in report["balance"] if c["split"] == "test"]
    whole = [c for c in test_checks if c["rule"] == "exact"]
    assert whole and all(c["ratio"] == 1.0 and c["ok"] for c in whole)
    combos = next(c for c in whole if c["what"].startswith("every combination 2x"))   # distractors.variations = 2
    assert combos["min"] == combos["max"] == 2 and combos["cells"] == 2 * 9
    # train and val divide the "seen" subset: counted in planned targets of 2 scenes each
    train_shape = next(c for c in report["balance"] if c["split"] == "train" and c["what"] == "target shape")
    assert train_shape["rule"] == "within-one" and train_shape["ok"]
    groups = report["hygiene"]["duplicate_groups"]
    assert len(groups) == 36 and all(len(g["images"]) == 2 and len(g["splits"]) == 1 for g in groups)
    assert report["hygiene"]["heldout_combinations"] == [["circle", "green"], ["square", "green"]]
    assert report["headline"]["heldout_leaks"] == 0


@pytest.mark.bpy
def test_max_ratio_overrides_the_design_bound(demo, tmp_path):
    res, report = audit(demo, "--strict", "--max-ratio", "1.2", "--out", str(tmp_path / "r"))
    assert res.exit_code == 1
    train_area = next(c for c in report["balance"] if c["scope"] == "train" and c["what"] == "target area")
    assert train_area["bound"] == 1.2 and train_area["ratio"] > 1.2 and train_area["ok"] is False
    assert f"train: target area: ratio {train_area['ratio']:.3f} exceeds 1.200" in res.output


@pytest.mark.bpy
def test_worker_processes_give_the_same_report(demo, tmp_path, monkeypatch):
    from blender_scenes.audit import run as audit_run
    one = audit_run.audit_path(demo, tmp_path / "one", workers=1)
    monkeypatch.setattr(audit_run, "PARALLEL_FROM", 1)
    two = audit_run.audit_path(demo, tmp_path / "two", workers=2)
    for key in ("headline", "splits", "balance", "hygiene", "findings"):
        assert one[key] == two[key]


# ------------------------------------------------------------------------------------------ damaged copies

@pytest.mark.bpy
def test_deleted_image_fails_strict_naming_it(demo, tmp_path):
    ds = copy_of(demo, tmp_path)
    victim = sorted((ds / "images" / "val").glob("*.png"))[2]
    victim.unlink()
    res, _ = audit(ds, "--strict")
    assert res.exit_code == 1
    first = res.output.splitlines()[0]
    assert first.startswith("FAILED:") and "integrity" in first
    assert f"images/val/{victim.name}: missing image" in res.output


@pytest.mark.bpy
def test_without_strict_the_headline_still_says_fail(demo, tmp_path):
    """--strict sets the exit status; the headline tells the truth either way."""
    ds = copy_of(demo, tmp_path)
    sorted((ds / "images" / "val").glob("*.png"))[2].write_bytes(b"not a png")
    res, _ = audit(ds)
    assert res.exit_code == 0
    assert res.output.splitlines()[0].startswith("FAIL (1 failed): 54 scenes"), res.output


@pytest.mark.bpy
def test_edited_answer_fails_strict_naming_file_line_and_question(demo, tmp_path):
    ds = copy_of(demo, tmp_path)
    qpath = ds / "questions" / "train.jsonl"
    lines = qpath.read_text().splitlines()
    rec = json.loads(lines[4])
    wrong = next(o for o in rec["options"] if o != rec["answer"])
    rec["answer"] = wrong
    lines[4] = json.dumps(rec)
    qpath.write_text("\n".join(lines) + "\n")
    res, report = audit(ds, "--strict")
    assert res.exit_code == 1
    assert f"questions/train.jsonl:5: question {rec['id']}: answer {wrong!r}" in res.output
    assert report["headline"]["labels_verified"] == report["headline"]["targets"] - 1


@pytest.mark.bpy
def test_truncated_scene_json_fails_strict_naming_the_file(demo, tmp_path):
    ds = copy_of(demo, tmp_path)
    victim = scene_files(ds, "test")[3]
    victim.write_text(victim.read_text()[:200])
    res, report = audit(ds, "--strict")
    assert res.exit_code == 1
    assert f"scenes/test/{victim.name}: not valid scene JSON" in res.output
    assert report["splits"]["test"]["scenes_read"] == len(scene_files(demo, "test")) - 1


@pytest.mark.bpy
def test_image_without_the_drawn_shape_fails_the_pixel_check(demo, tmp_path):
    import cv2
    import numpy as np
    ds = copy_of(demo, tmp_path)
    victim = sorted((ds / "images" / "train").glob("*.png"))[1]
    cv2.imwrite(str(victim), np.zeros((192, 192, 3), np.uint8))   # right size, background only
    res, report = audit(ds, "--strict")
    assert res.exit_code == 1
    assert f"scenes/train/{victim.stem}.json: object 1 (target" in res.output
    assert "100.0% of its mask shows the background colour in the image" in res.output
    assert report["splits"]["train"]["labels"]["verified"] == report["splits"]["train"]["labels"]["targets"] - 1


@pytest.mark.bpy
def test_identical_pixels_in_two_splits_fail_strict(demo, tmp_path):
    ds = copy_of(demo, tmp_path)
    a = sorted((ds / "images" / "train").glob("*.png"))[0]
    b = sorted((ds / "images" / "test").glob("*.png"))[0]
    shutil.copyfile(a, b)
    res, report = audit(ds, "--strict")
    assert res.exit_code == 1
    assert "identical pixels in 2 splits" in res.output
    groups = report["hygiene"]["duplicate_groups"]
    assert [sorted(g["images"]) for g in groups] == [sorted([f"images/train/{a.name}", f"images/test/{b.name}"])]


@pytest.mark.bpy
def test_leaked_heldout_pair_fails_strict(heldout, tmp_path):
    ds = copy_of(heldout, tmp_path)
    victim = scene_files(ds, "train")[0]
    rec = json.loads(victim.read_text())
    shape = rec["objects"][0]["shape"]
    rec["objects"][0]["color"] = "green"   # (shape, green) is a test combination
    victim.write_text(json.dumps(rec))
    qpath = ds / "questions" / "train.jsonl"
    qs = [json.loads(line) for line in qpath.read_text().splitlines()]
    for q in qs:
        if q["id"].startswith(rec["id"]):
            q["target"]["color"] = "green"
    qpath.write_text("".join(json.dumps(q) + "\n" for q in qs))
    res, report = audit(ds, "--strict")
    assert res.exit_code == 1
    assert "hygiene" in res.output.splitlines()[0]
    assert (f"scenes/train/{victim.name}: held-out combination shape={shape}, color=green (a test combination) "
            f"leaks into train") in res.output
    assert report["headline"]["heldout_leaks"] == 2   # the scene JSON and its question record


@pytest.mark.bpy
def test_unbalanced_split_is_reported_with_the_right_ratio(demo, tmp_path):
    ds = copy_of(demo, tmp_path)
    recs = {p: json.loads(p.read_text()) for p in scene_files(ds, "train")}
    area = Counter(r["objects"][0]["area"] for r in recs.values()).most_common(1)[0][0]
    dropped = [p for p, r in recs.items() if r["objects"][0]["area"] == area][:2]
    for p in dropped:   # drop two scenes of the most frequent area
        p.unlink()
        (ds / "images" / "train" / f"{p.stem}.png").unlink()
    left = [r for p, r in recs.items() if p not in dropped]
    counts = Counter(r["objects"][0]["area"] for r in left)
    expected = max(counts.values()) / min(counts.values())
    res, report = audit(ds, "--strict")
    assert res.exit_code == 1
    check = next(c for c in report["balance"] if c["scope"] == "train" and c["what"] == "target area")
    assert math.isclose(check["ratio"], expected) and check["ok"] is False
    from scipy.stats import chisquare
    assert math.isclose(check["p"], chisquare([counts[a] for a in counts]).pvalue)
    assert f"train: target area: ratio {expected:.3f}" in res.output


@pytest.mark.bpy
def test_partial_split_balance_is_informational(tmp_path):
    ds = tmp_path / "ds"
    run(load_preset("demo"), ds, limit=5, progress=False)
    res, report = audit(ds, "--strict")
    assert res.exit_code == 0, res.output
    assert report["partial_splits"] == ["train", "val", "test"]
    assert "partial split(s) train, val, test" in res.output
    assert all(not c["strict"] for c in report["balance"])


# ------------------------------------------------------------------------------------------ question files, errors

@pytest.mark.bpy
def test_question_file_alone(demo, tmp_path):
    res, report = audit(demo / "questions" / "val.jsonl", "--out", str(tmp_path / "q"))
    assert res.exit_code == 0, res.output
    recs = [json.loads(p.read_text()) for p in scene_files(demo, "val")]
    assert report["targets"] == len(recs)
    want = Counter(area_of_box(r["objects"][0]["bbox"], 192, 192) for r in recs)
    assert {k: v for k, v in report["areas"]["counts"].items() if v} == dict(want)
    assert report["labels_verified_share"] == 1.0
    assert (tmp_path / "q" / "report.html").is_file()


COCO_ROWS = [
        {"id": "a", "image": "x.jpg", "task": "area9", "question": "Where is the dog?", "answer": "top left",
         "options": ["top left", "center"], "source": "coco", "split": "val",
         "target": {"bbox": [10, 10, 20, 20], "category": "dog", "image_width": 300, "image_height": 150}},
        {"id": "b", "image": "x.jpg", "task": "horizontal", "question": "Where is the cat?", "answer": "left",
         "options": ["right", "left", "center"], "source": "coco", "split": "val",
         "target": {"bbox": [250, 100, 40, 40], "category": "cat", "image_width": 300, "image_height": 150}},
]


def test_coco_style_question_file_uses_the_target_image_size(tmp_path):
    # two COCO-style targets on a 300x150 image, sizes only in the target fields
    path = tmp_path / "coco.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in COCO_ROWS))
    res, report = audit(path, "--strict", "--out", str(tmp_path / "r"))
    # the cat's box centre (270, 120) is bottom right: the answer "left" is wrong and named
    assert res.exit_code == 1
    assert "coco.jsonl:2: question b: answer 'left', its box gives 'right'" in res.output
    assert report["areas"]["counts"]["top left"] == 1 and report["areas"]["counts"]["bottom right"] == 1
    assert report["categories"] == {"dog": 1, "cat": 1}
    assert report["tasks"]["horizontal"]["option_index"] == {"0": 0, "1": 1, "2": 0}


@pytest.mark.bpy
def test_compare_shows_real_areas_beside_synthetic_without_failing_strict(demo, tmp_path):
    path = tmp_path / "coco.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in COCO_ROWS))
    res, report = audit(demo, "--strict", "--compare", str(path), "--out", str(tmp_path / "r"))
    assert res.exit_code == 0, res.output   # the reference file's wrong answer is informational
    assert report["compare"]["areas"]["counts"]["bottom right"] == 1
    assert any("question b" in f["message"] and not f["strict"] for f in report["findings"])
    assert "Compared with coco.jsonl" in (tmp_path / "r" / "report.md").read_text()


def test_folder_without_manifest_is_an_input_error(tmp_path):
    res = CliRunner().invoke(cli, ["audit", str(tmp_path)])
    assert res.exit_code == 2
    assert "manifest.json: file not found" in res.output


def test_within_one_bound_and_exact_rule():
    assert within_one_bound([3, 4, 4]) == 4 / 3
    assert judge([3, 4, 4], "within-one")["ok"] is True
    assert judge([3, 4, 5], "within-one")["ok"] is False
    assert judge([0, 1, 1, 0], "within-one")["ok"] is True      # mean below one: 0 or 1 is within one
    assert judge([0, 2, 0, 0], "within-one")["ok"] is False
    assert judge([2, 2, 2], "exact")["ratio"] == 1.0
    assert judge([2, 2, 3], "exact")["ok"] is False
    assert judge([2, 2, 3], "exact", max_ratio=1.5)["ok"] is True
    # with 3 scenes per planned target, counts move in steps of 3: within one target is within 3 scenes
    assert judge([9, 12, 12], "within-one", unit=3)["ok"] is True
    assert judge([9, 12, 12], "within-one")["ok"] is False


# ------------------------------------------------------------------------------------------ the HTML report

def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.bpy
def test_html_report_renders_in_headless_chromium_with_every_picture(demo, tmp_path):
    browser = _chromium()
    if not browser:
        pytest.skip("chromium is not installed")
    res, report = audit(demo, "--out", str(tmp_path / "r"))
    html = (tmp_path / "r" / "report.html").read_text()
    n_img = html.count("<img ")
    assert n_img >= 5
    # a script that runs after load and writes how many pictures decoded into the DOM
    probe = html.replace("</body>", "<script>window.addEventListener('load',()=>{const i=[...document.images];"
                         "document.body.setAttribute('data-loaded',i.filter(x=>x.complete&&x.naturalWidth>0).length+'/'"
                         "+i.length);});</script></body>")
    page = tmp_path / "probe.html"
    page.write_text(probe)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run"]
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run([browser, *flags, f"--user-data-dir={profile}", "--virtual-time-budget=5000",
                              "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert f'data-loaded="{n_img}/{n_img}"' in dom.stdout, dom.stderr[-2000:]
    with tempfile.TemporaryDirectory() as profile:
        shot = tmp_path / "report.png"
        subprocess.run([browser, *flags, f"--user-data-dir={profile}", f"--screenshot={shot}",
                        "--window-size=1200,3000", (tmp_path / "r" / "report.html").as_uri()],
                       capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000
