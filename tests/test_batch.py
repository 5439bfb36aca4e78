"""A render job gives the same bytes however it is run: whole, killed and resumed, as concurrent shards of one
folder, with --limit/--split, or one scene from its record; user assets and bad ones at the job's boundary."""
from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest

from tests.processes import ROOT, cli, kill_when_rendered, ok

pytestmark = pytest.mark.bpy


def files(root: Path, prefix: str = "") -> dict[str, bytes]:
    """Every file of a dataset (the audit's report aside), by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and str(p.relative_to(root)).startswith(prefix) and "audit" not in p.parts}


def differing(a: dict, b: dict) -> list[str]:
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


@pytest.fixture(scope="module")
def civet(tmp_path_factory) -> Path:
    """The whole civet design (5,508 scenes at 336 px), rendered in one uninterrupted job."""
    out = tmp_path_factory.mktemp("civet") / "full"
    ok("render", "--preset", "civet", "--out", str(out), "--workers", "2", "--quiet")
    return out


def test_killed_and_resumed_civet_equals_the_whole_run(civet, tmp_path):
    out = tmp_path / "killed"
    proc = cli("render", "--preset", "civet", "--out", str(out), "--workers", "2", "--quiet")
    done = kill_when_rendered(proc, out, 1500)
    assert 1500 <= done < 5508, done
    log = ok("render", "--preset", "civet", "--out", str(out), "--resume", "--quiet")
    assert f"({done} already done)" in log
    assert not list(out.rglob(".*.tmp"))
    assert differing(files(civet), files(out)) == []


def test_shards_started_apart_without_resume_then_merge_equal_the_whole_run(civet, tmp_path):
    out = tmp_path / "sharded"
    procs = []
    for k in range(3):   # a job array: tasks start when the scheduler gets to them, into one folder
        procs.append(cli("render", "--preset", "civet", "--out", str(out), "--shard", f"{k}/3", "--quiet"))
        time.sleep(2)
    logs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], logs
    assert all("shard done" in log for log in logs)
    assert json.loads((out / "manifest.json").read_text())["status"] == {"train": "rendering", "val": "rendering",
                                                                          "test": "rendering"}
    ok("merge", str(out))
    assert differing(files(civet), files(out)) == []


def test_limit_and_split_give_the_same_images(civet, tmp_path):
    out = tmp_path / "limited"
    ok("render", "--preset", "civet", "--out", str(out), "--split", "test", "--limit", "40", "--quiet")
    images = files(out, "images")
    assert len(images) == 40
    full = files(civet, "images/test")
    assert all(full[k] == v for k, v in images.items())


def test_one_scene_from_its_record_alone(civet, tmp_path):
    for split, sid in (("train", "000007"), ("test", "005000")):
        out = tmp_path / sid
        ok("render", "--scene", str(civet / "scenes" / split / f"{sid}.json"), "--out", str(out), cwd=tmp_path)
        for kind, ext in (("images", "png"), ("scenes", "json")):
            rel = f"{kind}/{split}/{sid}.{ext}"
            assert (out / rel).read_bytes() == (civet / rel).read_bytes(), rel


def test_one_3d_scene_from_its_record_alone(tmp_path):
    config = tmp_path / "solid-small.toml"
    text = (ROOT / "blender_scenes/presets/solid.toml").read_text()
    config.write_text(text.replace("width = 336\nheight = 336", "width = 96\nheight = 96"))
    full = tmp_path / "full"
    ok("render", str(config), "--out", str(full), "--limit", "2", "--split", "val", "--quiet")
    record = sorted((full / "scenes" / "val").glob("*.json"))[1]
    ok("render", "--scene", str(record), "--out", str(tmp_path / "one"))
    for rel in (f"images/val/{record.stem}.png", f"scenes/val/{record.stem}.json"):
        assert (tmp_path / "one" / rel).read_bytes() == (full / rel).read_bytes(), rel


def test_plan_json_lists_every_scene():
    out = ok("plan", "--preset", "demo", "--json")
    plan = json.loads(out)
    assert sum(s["scenes"] for s in plan["splits"].values()) == len(plan["scenes"]) == 54
    first = plan["scenes"][0]
    assert {"id", "split", "subset", "objects"} <= first.keys()
    assert {"shape", "color", "size", "cell", "area"} <= first["objects"][0].keys()


# ---------------------------------------------------------------- user assets at the boundary

def _ell_library(folder: Path, broken: bool = False) -> Path:
    folder.mkdir(parents=True)
    obj = "v 0 0 0\nv 1 0 0\nv 0 1 0\n" if broken else \
        "v 0 0 0\nv 2 0 0\nv 2 1 0\nv 1 1 0\nv 1 2 0\nv 0 2 0\nf 1 2 3\nf 1 3 4\nf 1 4 5\nf 1 5 6\n"
    (folder / "ell.obj").write_text(obj)   # broken: vertices and no face
    (folder / "manifest.toml").write_text('[assets.ell]\nfile = "ell.obj"\nup = "Z"\nkind = "flat"\n')
    return folder


def _ell_design(path: Path, assets: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(f"""
        name = "ells"
        {f'assets = "{assets}"' if assets else ''}
        [image]
        width = 96
        height = 96
        [factors]
        shapes = ["square", "ell"]
        colors = {{ red = [255, 0, 0] }}
        sizes = {{ large = 0.8 }}
        [design]
        kind = "exhaustive"
        [splits]
        fractions = {{ train = 1.0 }}
    """))
    return path


def test_a_broken_user_asset_is_one_line_and_no_folder(tmp_path):
    _ell_library(tmp_path / "lib", broken=True)
    design = _ell_design(tmp_path / "designs" / "ells.toml", assets="../lib")   # relative to the design file
    proc = cli("render", str(design), "--out", str(tmp_path / "ds"), "--quiet", cwd=tmp_path / "designs")
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 2, out
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "asset 'ell'" in lines[0], out
    assert str(tmp_path / "lib" / "manifest.toml") in lines[0]
    assert not (tmp_path / "ds").exists()


def test_environment_variable_alone_makes_a_user_asset_renderable(tmp_path):
    lib = _ell_library(tmp_path / "lib")
    design = _ell_design(tmp_path / "ells.toml")
    env = {"SCENES2REAL_ASSETS": str(lib)}
    out = tmp_path / "ds"
    ok("render", str(design), "--out", str(out), "--limit", "4", "--quiet", env=env, cwd=tmp_path)
    coco = json.loads((out / "annotations" / "train.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["square", "ell"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["assets"] == str(lib)
    # the folder is stored resolved, so merge and audit find it without the variable
    ok("merge", str(out), cwd=tmp_path)
    assert "labels verified 4/4" in ok("audit", str(out), "--strict", cwd=tmp_path)
    # without it the design does not know the asset
    proc = cli("render", str(design), "--out", str(tmp_path / "other"), env={"SCENES2REAL_ASSETS": ""})
    assert proc.wait(timeout=120) == 2 and "unknown asset 'ell'" in proc.stdout.read()


def test_scratch_folders_are_removed_and_stale_ones_of_dead_processes_too(tmp_path):
    scratch = tmp_path / "scratch"
    stale = scratch / "scenes2real-999999999"   # above any pid_max: a dead process's folder
    stale.mkdir(parents=True)
    ok("render", "--preset", "demo", "--out", str(tmp_path / "ds"), "--limit", "2", "--workers", "2", "--quiet",
       env={"SCENES2REAL_SCRATCH": str(scratch)})
    assert list(scratch.iterdir()) == []   # the stale folder and the workers' own are gone
