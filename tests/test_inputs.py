"""Inputs checked where they enter, and commands that say what they did: `questions coco --images` refuses
images that are not there (or leaves them out with --skip-missing); `render --limit` says it is limited and
a resume keeps the folder's limit; every command that writes names, in its last line, where it wrote."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from blender_scenes.plan import plan
from blender_scenes.config import load_preset
from blender_scenes.questions import read_questions
from tests.clirun import invoke, run_in_process as ok
from tests.coco_fixtures import hard_case_instances, write_instances


def last_line(result) -> str:
    """The last line the command wrote (stdout and stderr in the order written)."""
    return result.output.rstrip("\n").rpartition("\n")[2]


def one_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and result.output.startswith("error: "), result.output
    return result.output


# -- questions coco --images ------------------------------------------------------------------------------

@pytest.fixture
def coco(tmp_path):
    """The hand-checked COCO file, its images folder holding every listed image, and the images that get
    questions (their file names, in image id order)."""
    data = hard_case_instances()
    instances = write_instances(tmp_path / "instances_val2017.json", data)
    images = tmp_path / "val2017"
    images.mkdir()
    for img in data["images"]:
        (images / img["file_name"]).write_bytes(b"jpeg")
    asked = sorted({r.target["image_id"] for r in _records(instances, tmp_path / "all.jsonl", images)})
    names = {img["id"]: img["file_name"] for img in data["images"]}
    return instances, images, [names[i] for i in asked]


def _records(instances, out, images, *extra):
    ok("questions", "coco", "--instances", instances, "--images", images, "--out", out, *extra)
    return read_questions(out)


def test_a_missing_images_folder_is_one_line_and_nothing_written(coco, tmp_path):
    instances, _, _ = coco
    out = tmp_path / "q" / "deeper" / "questions.jsonl"
    line = one_error(invoke("questions", "coco", "--instances", instances, "--images", tmp_path / "nope",
                            "--out", out))
    assert f"{tmp_path / 'nope'}: folder not found" in line and "instances_val2017.json" in line
    assert not (tmp_path / "q").exists()   # not even the folders the lock made to stand beside the output


def test_a_wrong_images_folder_counts_every_image_missing(coco, tmp_path):
    instances, _, asked = coco
    empty = tmp_path / "train2017"
    empty.mkdir()
    out = tmp_path / "q.jsonl"
    line = one_error(invoke("questions", "coco", "--instances", instances, "--images", empty, "--out", out))
    assert (f"{empty}: {len(asked)} of {len(asked)} images listed in instances_val2017.json are missing "
            f"(first: {asked[0]}); expected the COCO images folder (or --skip-missing)") in line
    assert not out.exists()


def test_some_missing_images_are_counted_with_the_first(coco, tmp_path):
    instances, images, asked = coco
    for name in asked[1:3]:
        (images / name).unlink()
    out = tmp_path / "q.jsonl"
    line = one_error(invoke("questions", "coco", "--instances", instances, "--images", images, "--out", out))
    assert f": 2 of {len(asked)} images listed in instances_val2017.json are missing (first: {asked[1]})" in line
    assert not out.exists()


def test_skip_missing_keeps_the_present_images_and_counts_the_rest(coco, tmp_path):
    instances, images, asked = coco
    everything = _records(instances, tmp_path / "all.jsonl", images)
    gone = set(asked[1:3])
    for name in gone:
        (images / name).unlink()
    out = tmp_path / "q.jsonl"
    result = ok("questions", "coco", "--instances", instances, "--images", images, "--out", out, "--skip-missing")
    summary = json.loads(result.stdout)
    records = read_questions(out)
    expected = [r.id for r in everything if Path(r.image).name not in gone]
    assert [r.id for r in records] == expected and expected
    dropped = len(everything) - len(expected)
    assert summary["images_missing"] == 2 and summary["dropped"]["missing_image"] == dropped
    assert last_line(result) == (f"wrote {len(expected)} questions to {out}; left out 2 images missing from "
                                 f"{images} ({dropped} targets)")
    # nothing left: one line, nothing written
    for name in asked:
        (images / name).unlink(missing_ok=True)
    line = one_error(invoke("questions", "coco", "--instances", instances, "--images", images,
                            "--out", tmp_path / "none.jsonl", "--skip-missing"))
    assert "none of the images" in line and not (tmp_path / "none.jsonl").exists()


def test_records_of_the_default_template_have_no_template_key(coco, tmp_path):
    """As synthetic and benchmark records (README: default-template records have no such key)."""
    instances, images, _ = coco
    out = tmp_path / "q.jsonl"
    ok("questions", "coco", "--instances", instances, "--images", images, "--out", out,
       "--tasks", "area9,horizontal,left_right")
    lines = out.read_text().splitlines()
    assert lines and not any('"template"' in line for line in lines)
    assert all(r.template is None for r in read_questions(out))


# -- render --limit, and resume ---------------------------------------------------------------------------

@pytest.mark.bpy
def test_render_limit_is_said_and_kept_by_resume(tmp_path):
    out = tmp_path / "ds"
    design = {}
    for s in plan(load_preset("demo")):
        design[s.split] = design.get(s.split, 0) + 1

    def images():
        return len(list(out.glob("images/*/*.png")))

    result = ok("render", "--preset", "demo", "--out", out, "--limit", 2, "--quiet")
    lines = result.output.splitlines()
    for split, n in design.items():
        assert f"{split}: 2/2 scenes (limited: 2 of {n})" in lines
    assert last_line(result).startswith("rendered 6 scenes (0 already done)") and last_line(result).endswith(
        f"-> {out}")

    result = ok("render", "--preset", "demo", "--out", out, "--resume", "--quiet")   # the folder's limit
    assert "resuming with the folder's limit: the first 2 scenes of each split" in result.output
    assert "(6 already done)" in result.output and images() == 6
    assert f"train: 2/2 scenes (limited: 2 of {design['train']})" in result.output

    result = ok("render", "--preset", "demo", "--out", out, "--resume", "--limit", 3, "--quiet")
    assert result.output.splitlines()[0] == "note: limit 2 -> 3 (was recorded in the manifest)"
    assert "rendered 3 scenes (6 already done)" in result.output and images() == 9

    line = one_error(invoke("render", "--preset", "demo", "--out", out, "--resume", "--limit", 1, "--quiet"))
    assert "--limit 3" in line and images() == 9

    result = ok("merge", out)   # the recorded limit: the split files hold the 3 scenes of each split
    assert f"val: 3/3 scenes (limited: 3 of {design['val']})" in result.output
    assert last_line(result) == f"merged -> {out} (annotations/, questions/, manifest.json)"
    rendered = {p.stem for p in (out / "images" / "val").glob("*.png")}
    assert {Path(r.image).stem for r in read_questions(out / "questions" / "val.jsonl")} == rendered
    assert len(rendered) == 3


@pytest.mark.bpy
def test_a_resumed_shard_takes_the_folders_limit(tmp_path):
    out = tmp_path / "ds"
    ok("render", "--preset", "demo", "--out", out, "--limit", 2, "--shard", "0/2", "--quiet")
    result = ok("render", "--preset", "demo", "--out", out, "--shard", "1/2", "--resume", "--quiet")
    assert "resuming with the folder's limit: the first 2 scenes of each split" in result.output
    assert last_line(result).endswith(f"-> {out}") and "shard done" in result.output
    ok("merge", out)
    assert len(list(out.glob("images/*/*.png"))) == 6
    assert json.loads((out / "manifest.json").read_text())["status"] == dict.fromkeys(("train", "val", "test"),
                                                                                      "complete")



@pytest.mark.bpy
def test_a_resume_keeps_the_folders_splits(tmp_path):
    out = tmp_path / "ds"
    ok("render", "--preset", "demo", "--out", out, "--split", "val", "--limit", 2, "--quiet")
    result = ok("render", "--preset", "demo", "--out", out, "--resume", "--quiet")   # not every split
    assert f"resuming with the folder's splits: val (recorded in {out / 'manifest.json'}" in result.output
    assert "(2 already done)" in result.output
    assert sorted(p.parent.name for p in out.glob("images/*/*.png")) == ["val", "val"]
    # the shards of a --split job: a resumed shard without --split joins it (its lock key and job match)
    other = tmp_path / "shards"
    ok("render", "--preset", "demo", "--out", other, "--split", "test", "--limit", 2, "--shard", "0/2", "--quiet")
    result = ok("render", "--preset", "demo", "--out", other, "--shard", "1/2", "--resume", "--quiet")
    assert "resuming with the folder's splits: test" in result.output
    ok("merge", other)
    assert sorted(p.parent.name for p in other.glob("images/*/*.png")) == ["test", "test"]


@pytest.mark.bpy
def test_the_library_resume_keeps_the_folders_split_and_limit_too(tmp_path):
    from blender_scenes.batch import run

    out = tmp_path / "ds"
    run(load_preset("demo"), out, splits=["val"], limit=2, progress=False)
    stats = run(load_preset("demo"), out, resume=True, progress=False)
    assert stats.skipped == 2 and stats.scenes == 0 and list(stats.status) == ["val"]
    assert len(list(out.glob("images/*/*.png"))) == 2

# -- every writing command names where it wrote -----------------------------------------------------------

OBJ = "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 0 0 1\nv 1 0 1\nv 1 1 1\nv 0 1 1\n" \
      "f 1 2 3 4\nf 5 8 7 6\nf 1 5 6 2\nf 2 6 7 3\nf 3 7 8 4\nf 5 1 4 8\n"


@pytest.mark.bpy
def test_each_writing_command_names_its_output_last(demo_dataset, tiny_checkpoint, tmp_path):
    """One small run of each command that writes; its last line (stdout, or stderr after data on stdout) names
    the path written. Not here: render (above), assets import-pybullet (downloads pybullet), merge-adapter
    (needs a trained adapter; tests/test_merge.py), train without --dry-run (tests/test_train.py)."""
    dataset = tmp_path / "ds"
    shutil.copytree(demo_dataset, dataset)
    questions = tmp_path / "q" / "val.jsonl"
    model = tiny_checkpoint("qwen2_5_vl")
    vsr = tmp_path / "vsr" / "test.jsonl"
    vsr.parent.mkdir()
    vsr.write_text(json.dumps({"image": "a.png", "caption": "The cat is left of the dog.", "label": 1,
                               "relation": "left of"}) + "\n")
    shutil.copy(next((dataset / "images" / "val").glob("*.png")), vsr.parent / "a.png")
    mesh = tmp_path / "box.obj"
    mesh.write_text(OBJ)
    run, run2 = tmp_path / "run", tmp_path / "run2"
    table = [   # (command, the path its last line must name)
        (["questions", "coco", "--instances", dataset / "annotations" / "val.json", "--images", dataset,
          "--out", questions, "--attributes", "color", "--source", "synthetic"], questions),
        (["questions", "vsr", "--file", vsr, "--images", vsr.parent, "--out", tmp_path / "vsr.jsonl"],
         tmp_path / "vsr.jsonl"),
        (["merge", dataset], dataset),
        (["audit", dataset, "--out", tmp_path / "audit"], tmp_path / "audit"),
        (["export", questions, "--format", "trl", "--out", tmp_path / "trl"], tmp_path / "trl"),
        (["export", questions, "--format", "llamafactory", "--out", tmp_path / "lf"], tmp_path / "lf"),
        (["evaluate", "--model", model, "--questions", questions, "--out", run, "--limit", 3, "--device", "cpu",
          "--max-new-tokens", 2], run),
        (["evaluate", "--model", model, "--questions", questions, "--out", run2, "--limit", 3, "--device", "cpu",
          "--max-new-tokens", 2], run2),
        (["score", run, "--questions", questions, "--bootstrap", 10], run),
        (["compare", run, run2, "--out", tmp_path / "cmp"], tmp_path / "cmp"),
        (["tiny-model", "qwen2_5_vl", "--out", tmp_path / "tiny"], tmp_path / "tiny"),
        (["train", "--model", model, "--train", questions, "--out", tmp_path / "train", "--dry-run"],
         tmp_path / "train"),
        (["assets", "add", mesh, "--name", "box", "--assets", tmp_path / "lib"], tmp_path / "lib"),
        (["assets", "sheet", "--out", tmp_path / "sheet.png", "--tile", 48, "star"], tmp_path / "sheet.png"),
    ]
    for args, written in table:
        result = ok(*args)
        assert str(written) in last_line(result), (args[:2], result.output[-2000:])
