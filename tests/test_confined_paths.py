"""Paths that come from file content stay inside their output (issue 20): scene ids and splits of a scene record
or a stored plan, the dataset layout's path builders, and the references an added asset's files make."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from blender_scenes.dataset import DatasetLayout
from blender_scenes.errors import InputError
from tests.processes import cli, ok

OUTSIDE_ID = "../../../victim"


def tree(root: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under `root`: a listing to compare before and after."""
    out: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = None
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = None if os.path.islink(p) else Path(p).read_bytes()
    return out


def refused(*args: str, cwd: Path | None = None) -> str:
    """Run a command that must refuse its input: exit 2 and one `error:` line, which is returned."""
    proc = cli(*args, cwd=cwd)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 2, out
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out
    return lines[0]


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """One rendered scene of the demo design, with its stored plan of all 54."""
    out = tmp_path_factory.mktemp("small") / "ds"
    ok("render", "--preset", "demo", "--out", out, "--split", "train", "--limit", "1", "--quiet")
    return out


# ---------------------------------------------------------------- scene ids and splits

@pytest.mark.bpy
@pytest.mark.parametrize("field,value", [("id", OUTSIDE_ID), ("split", "ABS")])
def test_render_scene_refuses_a_record_naming_a_path_outside_out(small, tmp_path, field, value):
    value = str(tmp_path / "abs") if value == "ABS" else value
    record = json.loads(next((small / "scenes" / "train").glob("*.json")).read_text())
    record[field] = value
    (tmp_path / "rec.json").write_text(json.dumps(record))
    out = tmp_path / "w" / "x" / "out"   # the id would write w/x/victim.png and overwrite w/x/victim.json
    out.parent.mkdir(parents=True)
    (out.parent / "victim.json").write_text("precious")
    before = tree(tmp_path)
    line = refused("render", "--scene", tmp_path / "rec.json", "--out", out)
    assert str(tmp_path / "rec.json") in line and f"field '{field}'" in line and repr(value) in line
    assert tree(tmp_path) == before


@pytest.mark.bpy
@pytest.mark.parametrize("field,value", [("id", OUTSIDE_ID), ("split", "/tmp/elsewhere")])
def test_resume_refuses_a_stored_plan_naming_a_path_outside(small, tmp_path, field, value):
    ds = tmp_path / "ds"
    shutil.copytree(small, ds)
    plan = json.loads((ds / "plan.json").read_text())
    first = next(i for i, s in enumerate(plan["scenes"]) if s["split"] == "train")   # the one --limit 1 renders
    plan["scenes"][first][field] = value
    (ds / "plan.json").write_text(json.dumps(plan))
    before = tree(tmp_path)
    line = refused("render", "--preset", "demo", "--out", ds, "--split", "train", "--limit", "1", "--resume",
                   "--quiet")
    assert f"{ds / 'plan.json'}: field 'scenes[{first}].{field}'" in line and repr(value) in line
    assert tree(tmp_path) == before


def test_layout_builds_paths_inside_the_dataset_only(tmp_path):
    layout = DatasetLayout(tmp_path / "ds")
    assert layout.image("train", "000042") == tmp_path / "ds" / "images" / "train" / "000042.png"
    assert layout.scene("test", "1234567") == tmp_path / "ds" / "scenes" / "test" / "1234567.json"
    assert layout.depth_rel("val", "000001") == "depth/val/000001.png"
    for split, sid, field in (("train", OUTSIDE_ID, "id"), ("train", "../x", "id"), ("train", "", "id"),
                              ("train", "12/3", "id"), ("/abs", "000001", "split"), ("..", "000001", "split")):
        for build in (layout.image, layout.image_rel, layout.depth, layout.depth_rel, layout.scene):
            with pytest.raises(InputError, match=f"field '{field}'"):
                build(split, sid)
    # a folder of the dataset that is a symlink out of it (say, from an unpacked archive) is refused too
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "ds" / "scenes").mkdir(parents=True)
    (tmp_path / "ds" / "scenes" / "val").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InputError, match="outside the dataset"):
        DatasetLayout(tmp_path / "ds").scene("val", "000001")


# ---------------------------------------------------------------- references of an added asset

OBJ = "mtllib {mtl}\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nusemtl m\nf 1/1 2/2 3/3\n"


@pytest.fixture
def places(tmp_path) -> tuple[Path, Path, Path]:
    """(a source folder three levels down, a payload file outside it, a library holding one asset)."""
    src = tmp_path / "a" / "b" / "src"
    src.mkdir(parents=True)
    (tmp_path / "payload").mkdir()
    (tmp_path / "payload" / "x.txt").write_text("not yours")
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "manifest.toml").write_text('[assets.block]\nbuiltin = "cube"\n')
    return src, tmp_path / "payload" / "x.txt", lib


@pytest.mark.parametrize("case", ["mtl-relative", "mtl-absolute", "mtllib-outside", "gltf-uri", "symlink"])
def test_assets_add_refuses_a_reference_outside_the_folder(places, tmp_path, case):
    src, payload, lib = places
    mesh, referrer, ref = src / "box.obj", src / "box.mtl", None
    mesh.write_text(OBJ.format(mtl="box.mtl"))
    if case == "mtl-relative":
        ref = "../../../payload/x.txt"
        referrer.write_text(f"newmtl m\nmap_Kd -bm 1 {ref}\n")
    elif case == "mtl-absolute":
        ref = str(payload)
        referrer.write_text(f"newmtl m\nmap_Kd {ref}\n")
    elif case == "mtllib-outside":
        ref = "../../../payload/x.txt"
        mesh.write_text(OBJ.format(mtl=ref))
        referrer = mesh
    elif case == "gltf-uri":
        ref = "..%2F..%2F..%2Fpayload%2Fx.txt"   # %-encoded, as URIs are
        mesh = referrer = src / "box.gltf"
        mesh.write_text(json.dumps({"asset": {"version": "2.0"},
                                    "buffers": [{"uri": "data:application/octet-stream;base64,AAAA"},
                                                {"uri": ref, "byteLength": 9}]}))
    else:   # a file inside the folder that is a symlink out of it
        ref = "tex.png"
        (src / "tex.png").symlink_to(payload)
        referrer.write_text(f"newmtl m\nmap_Kd {ref}\n")
    before = tree(tmp_path)
    line = refused("assets", "add", mesh, "--name", "box", "--textured", "--assets", lib)
    assert str(referrer) in line and repr(ref) in line and "outside the folder" in line
    assert tree(tmp_path) == before   # nothing copied, anywhere; the library and its manifest unchanged


@pytest.mark.parametrize("name", ["../../x", "/tmp/x", "a/b", "box\n"])
def test_assets_add_refuses_a_name_that_is_not_a_folder_name(places, tmp_path, name):
    src, _, lib = places
    (src / "box.obj").write_text(OBJ.format(mtl="box.mtl"))
    before = tree(tmp_path)
    line = refused("assets", "add", src / "box.obj", "--name", name, "--assets", lib)
    assert line.startswith(f"error: --name: {name!r}: expected letters, digits")
    assert tree(tmp_path) == before


@pytest.mark.bpy
def test_assets_add_copies_references_in_subfolders(places, tmp_path):
    src, _, lib = places
    (src / "box.obj").write_text(OBJ.format(mtl="mats/box.mtl"))
    (src / "mats" / "bumps").mkdir(parents=True)
    (src / "textures").mkdir()
    # texture paths are relative to the .mtl's folder
    (src / "mats" / "box.mtl").write_text("newmtl m\nKd 1 1 1\nmap_Kd -s 1 1 1 ../textures/wood.png\n"
                                          "map_Bump -bm 0.5 bumps/b.png\n")
    cv2.imwrite(str(src / "textures" / "wood.png"), np.full((4, 4, 3), 120, np.uint8))
    cv2.imwrite(str(src / "mats" / "bumps" / "b.png"), np.full((4, 4, 3), 60, np.uint8))
    (src / "unused.txt").write_text("not referenced: not copied")
    ok("assets", "add", src / "box.obj", "--name", "box", "--textured", "--assets", lib)
    assert sorted(p.relative_to(lib).as_posix() for p in lib.rglob("*") if p.is_file()) == [
        "box/box.obj", "box/mats/box.mtl", "box/mats/bumps/b.png", "box/textures/wood.png", "manifest.toml"]
    assert "[assets.block]" in (lib / "manifest.toml").read_text()
    assert "1 ok, 0 with problems" in ok("assets", "check", "box", "--assets", lib)   # Blender finds its textures

    # a glTF's files, a %-encoded name among them; a data: URI is embedded and copies nothing
    (src / "bin").mkdir()
    (src / "bin" / "tri.bin").write_bytes(b"\0" * 12)
    (src / "img dir").mkdir()
    cv2.imwrite(str(src / "img dir" / "a.png"), np.zeros((2, 2, 3), np.uint8))
    (src / "tri.gltf").write_text(json.dumps({"asset": {"version": "2.0"},
                                              "buffers": [{"uri": "bin/tri.bin", "byteLength": 12}],
                                              "images": [{"uri": "img%20dir/a.png"},
                                                         {"uri": "data:image/png;base64,AAAA"}]}))
    ok("assets", "add", src / "tri.gltf", "--name", "tri", "--assets", lib)
    assert sorted(p.relative_to(lib / "tri").as_posix() for p in (lib / "tri").rglob("*") if p.is_file()) == [
        "bin/tri.bin", "img dir/a.png", "tri.gltf"]
    assert not list(lib.glob(".*"))   # no temporary folder left
