"""The asset library: manifest validation, design checks (unknown, wrong kind, textured x colours),
import and normalisation of every format, broken assets, the CLI, and a rendered scene of real objects
whose labels are verified from its pixels."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from blender_scenes.assets import FLAT_SHAPES, SOLID_SHAPES, Library, check_design, display_name, load_library
from blender_scenes.config import parse_design
from scenes2real.cli import cli
from blender_scenes.errors import InputError

REAL = ["mug", "teddy_bear", "toy_brick", "traffic_cone", "rubber_duck", "soccer_ball", "bunny", "table", "tray",
        "shelf", "domino"]


def design(shapes, style="3d", colors=None, subsets=None, assets=None, **extra) -> dict:
    d = {"name": "t", "render": {"style": style, "samples": 1},
         "factors": {"shapes": shapes, "colors": colors or {"red": [200, 30, 30], "blue": [30, 60, 220]},
                     "sizes": {"large": 0.8} if style == "flat" else {"large": 1.2}},
         "design": {"kind": "exhaustive"}, "splits": {"fractions": {"train": 1.0}}, **extra}
    if subsets:
        d["design"]["subsets"] = subsets
    if assets:
        d["assets"] = str(assets)
    return d


def write_manifest(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.toml").write_text(textwrap.dedent(text))
    return folder


# ---------------------------------------------------------------- manifest and design checks (no bpy)

def test_shipped_library_has_builtins_and_real_objects():
    lib = Library()
    assert set(FLAT_SHAPES) <= set(lib.names("flat")) and set(SOLID_SHAPES) <= set(lib.names("3d"))
    files = [n for n, a in lib.assets.items() if a.entry.file]
    assert set(REAL) <= set(files) and len(files) >= 10
    for n in files:
        a = lib.get(n)
        assert a.path.is_file(), n
        assert a.entry.licence != "unknown" and a.entry.origin, n
    assert display_name("teddy_bear") == "teddy bear" and display_name("rubber_duck") == "rubber duck"
    assert not lib.get("rubber_duck").entry.colourable and lib.get("mug").entry.colourable


def test_shipped_files_are_small():
    total = sum(f.stat().st_size for f in (Path(__file__).parents[1] / "assets").rglob("*") if f.is_file())
    assert total < 5 * 2**20


def test_manifest_unknown_key_names_file_and_field(tmp_path):
    write_manifest(tmp_path / "lib", """
        [assets.cup]
        file = "cup.obj"
        colour = true
    """)
    with pytest.raises(InputError) as err:
        Library(tmp_path / "lib")
    msg = str(err.value)
    assert "manifest.toml" in msg and "assets.cup.colour" in msg and "unknown key" in msg and "\n" not in msg


def test_manifest_unsupported_format_and_missing_source(tmp_path):
    write_manifest(tmp_path / "a", '[assets.cup]\nfile = "cup.3ds"\n')
    with pytest.raises(InputError, match=r"assets\.cup\.file.*unsupported format '\.3ds'"):
        Library(tmp_path / "a")
    write_manifest(tmp_path / "b", '[assets.cup]\ndisplay = "cup"\n')
    with pytest.raises(InputError, match="exactly one source"):
        Library(tmp_path / "b")


def test_user_library_is_searched_first(tmp_path):
    lib_dir = write_manifest(tmp_path / "lib", """
        [assets.mug]
        builtin = "cylinder"
        display = "coffee mug"
        [assets.beaker]
        builtin = "cylinder"
    """)
    lib = load_library(lib_dir)
    assert lib.get("mug").display == "coffee mug" and lib.get("mug").source == "builtin:cylinder"
    assert display_name("mug", str(lib_dir)) == "coffee mug" and display_name("mug") == "mug"
    assert "beaker" in lib and "cube" in lib


def test_swapping_shapes_needs_no_code_change():
    from blender_scenes.annotate import categories
    from blender_scenes.plan import plan, summarize

    for shapes in (["cube", "sphere"], ["mug", "teddy_bear"]):
        cfg = parse_design(design(shapes), "swap.toml")
        assert set(summarize(plan(cfg))["train"]["shape"]) == set(shapes)
    assert [c["name"] for c in categories(cfg)] == ["mug", "teddy bear"]
    r = CliRunner().invoke(cli, ["plan", "--preset", "objects", "--json"])   # a shipped design of real objects
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["display"]["teddy_bear"] == "teddy bear" and out["splits"]["train"]["shape"]["teddy_bear"] > 0


def test_unknown_asset_is_a_config_error_listing_known_names():
    with pytest.raises(InputError) as err:
        parse_design(design(["mug", "coffee_pot"]), "d.toml")
    msg = str(err.value)
    assert msg.startswith("d.toml: field 'factors.shapes': unknown asset 'coffee_pot'")
    assert "mug" in msg and "teddy_bear" in msg and "cube" in msg


def test_flat_and_3d_assets_do_not_mix():
    with pytest.raises(InputError, match=r"factors\.shapes.*'mug' is a 3D asset.*flat.*square"):
        parse_design(design(["square", "mug"], style="flat"), "d.toml")
    with pytest.raises(InputError, match=r"factors\.shapes.*'star' is a flat \(2D\) asset.*3D assets"):
        parse_design(design(["cube", "star"]), "d.toml")


def test_textured_asset_is_not_crossed_with_colours():
    with pytest.raises(InputError, match=r"field 'factors\.colors': asset 'rubber_duck' keeps its own textures"):
        parse_design(design(["mug", "rubber_duck"]), "d.toml")
    subsets = [{"name": "painted", "shapes": ["mug"], "colors": ["red", "blue"]},
               {"name": "textured", "shapes": ["rubber_duck"], "colors": ["natural"]}]
    colors = {"red": [200, 30, 30], "blue": [30, 60, 220], "natural": [255, 255, 255]}
    cfg = parse_design(design(["mug", "rubber_duck"], colors=colors, subsets=subsets), "d.toml")
    check_design(cfg, "d.toml")
    bad = [dict(subsets[0]), {"name": "textured", "shapes": ["rubber_duck"], "colors": ["red", "natural"]}]
    with pytest.raises(InputError, match=r"design\.subsets\[1\]\.colors"):
        parse_design(design(["mug", "rubber_duck"], colors=colors, subsets=bad), "d.toml")


# ---------------------------------------------------------------- import and normalisation (bpy)

@pytest.mark.bpy
def test_every_shipped_asset_passes_check_and_is_normalised():
    from blender_scenes.assets.manage import check_assets
    from blender_scenes.render.meshes import load_asset
    from blender_scenes.render.shapes import mesh_vertices

    results = check_assets(None)
    assert [r for r in results if r[1]] == []
    lib = Library()
    assert {n for n, _ in results} == set(lib.names())
    for name in lib.names():
        co = mesh_vertices(load_asset(lib.get(name)))
        lo, hi = co.min(0), co.max(0)
        assert abs((hi - lo).max() - 1.0) < 1e-5, name               # longest side 1
        assert np.allclose((lo + hi)[:2] / 2, 0.0, atol=1e-5), name   # centred in XY
        if lib.get(name).kind == "flat":
            assert np.allclose(co[:, 2], 0.0), name
        else:
            assert abs(lo[2]) < 1e-5, name                            # resting on the ground


def _box_object(dims=(1.0, 2.0, 3.0), parts=2):
    """Mesh objects side by side along x whose union has bbox `dims` (x, y, z): a multi-object file."""
    import bpy

    from blender_scenes.render.blend import reset_blender
    reset_blender()
    scene = bpy.context.scene
    objs = []
    for k in range(parts):
        w = dims[0] / parts
        x0 = k * w
        verts = [(x0 + dx * w, dy * dims[1], dz * dims[2]) for dx in (0, 1) for dy in (0, 1) for dz in (0, 1)]
        faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
        mesh = bpy.data.meshes.new(f"part{k}")
        mesh.from_pydata(verts, [], faces)
        o = bpy.data.objects.new(f"part{k}", mesh)
        scene.collection.objects.link(o)
        objs.append(o)
    return objs


@pytest.mark.bpy
def test_every_format_imports_merged_with_its_up_axis(tmp_path):
    """A 1 x 2 x 3 box in two objects, written in each format by Blender's exporters (each with its
    usual axes), comes back as one mesh of dims 1/3 x 2/3 x 1."""
    import bpy

    from blender_scenes.render.meshes import load_asset, mesh_stats

    lib_dir = tmp_path / "lib"
    lib_dir.mkdir()
    _box_object()
    bpy.ops.wm.obj_export(filepath=str(lib_dir / "box.obj"), export_materials=False)
    bpy.ops.wm.stl_export(filepath=str(lib_dir / "box.stl"))
    bpy.ops.wm.ply_export(filepath=str(lib_dir / "box.ply"))
    bpy.ops.export_scene.gltf(filepath=str(lib_dir / "box.glb"), export_format="GLB")
    bpy.ops.export_scene.fbx(filepath=str(lib_dir / "box.fbx"))
    bpy.data.libraries.write(str(lib_dir / "box.blend"), set(bpy.data.objects), fake_user=True)
    entries = {"obj": {}, "stl": {}, "ply": {}, "glb": {}, "fbx": {}, "blend": {},
               "blend_one": {"object": "part1"}}
    text = ""
    for name, extra in entries.items():
        ext = name.split("_")[0]
        text += f'[assets.box_{name}]\nfile = "box.{ext}"\n' + "".join(f'{k} = "{v}"\n' for k, v in extra.items())
    text += '[assets.box_sideways]\nfile = "box.stl"\nup = "Y"\n'
    write_manifest(lib_dir, text)
    lib = Library(lib_dir)
    for name in entries:
        stats = mesh_stats(load_asset(lib.get(f"box_{name}")))
        want = [0.167, 0.667, 1.0] if name == "blend_one" else [0.333, 0.667, 1.0]
        assert np.allclose(stats["dimensions"], want, atol=2e-3), (name, stats)
        # (the STL importer drops the two triangles the boxes share)
        assert stats["triangles"] in ((12,) if name == "blend_one" else (22, 24)), (name, stats)
    # the file's Y axis turned up: the 2-long side is now the height
    assert np.allclose(mesh_stats(load_asset(lib.get("box_sideways")))["dimensions"], [0.333, 1.0, 0.667], atol=2e-3)


@pytest.mark.bpy
def test_broken_assets_fail_with_one_line(tmp_path):
    import bpy

    from blender_scenes.assets.manage import check_assets

    lib_dir = tmp_path / "lib"
    lib_dir.mkdir()
    _box_object(parts=1)
    bpy.data.libraries.write(str(lib_dir / "box.blend"), set(bpy.data.objects), fake_user=True)
    (lib_dir / "points.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")          # vertices, no faces
    (lib_dir / "dot.obj").write_text("v 1 1 1\nv 1 1 1\nv 1 1 1\nf 1 2 3\n")     # a face of zero size
    (lib_dir / "garbage.glb").write_bytes(b"not a gltf file at all")
    (lib_dir / "tex.obj").write_text("mtllib tex.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\n"
                                     "usemtl m\nf 1/1 2/2 3/3\n")
    (lib_dir / "tex.mtl").write_text("newmtl m\nKd 1 1 1\nmap_Kd missing.png\n")
    write_manifest(lib_dir, """
        [assets.gone]
        file = "nowhere.obj"
        [assets.points]
        file = "points.obj"
        [assets.dot]
        file = "dot.obj"
        [assets.wrong_object]
        file = "box.blend"
        object = "Chair"
        [assets.garbage]
        file = "garbage.glb"
        [assets.textured]
        file = "tex.obj"
        colourable = false
    """)
    results = dict(check_assets(str(lib_dir), ["gone", "points", "dot", "wrong_object", "garbage", "textured"]))
    expect = {"gone": "nowhere.obj not found", "points": "holds no mesh with faces", "dot": "zero size",
              "wrong_object": "'Chair' is not an object or collection of box.blend; it holds objects: part0",
              "garbage": "could not be imported", "textured": "missing.png' of material 'm' not found"}
    for name, needle in expect.items():
        assert len(results[name]) == 1, (name, results[name])
        msg = results[name][0]
        assert needle in msg and f"asset '{name}'" in msg and "\n" not in msg, (name, msg)
    # the library itself refuses an unknown format before anything is imported
    write_manifest(tmp_path / "fmt", '[assets.scan]\nfile = "scan.xyz"\n')
    with pytest.raises(InputError, match=r"field 'assets\.scan\.file': unsupported format '\.xyz'"):
        check_assets(str(tmp_path / "fmt"))


# ---------------------------------------------------------------- the CLI

@pytest.mark.bpy
def test_cli_add_then_list_then_check(tmp_path):
    import bpy

    lib_dir = tmp_path / "mine"
    src = tmp_path / "src"
    src.mkdir()
    _box_object()
    bpy.ops.wm.obj_export(filepath=str(src / "crate.obj"), export_materials=False)
    runner = CliRunner()
    r = runner.invoke(cli, ["assets", "add", str(src / "crate.obj"), "--name", "crate", "--display", "wooden crate",
                            "--assets", str(lib_dir)])
    assert r.exit_code == 0, r.output
    assert (lib_dir / "crate" / "crate.obj").is_file()
    r = runner.invoke(cli, ["assets", "add", str(src / "crate.obj"), "--name", "crate", "--assets", str(lib_dir)])
    assert r.exit_code == 2 and "asset 'crate' already exists in your library" in r.output
    r = runner.invoke(cli, ["assets", "add", str(src / "crate.obj"), "--name", "mug", "--assets", str(lib_dir)])
    assert r.exit_code == 2 and "already exists in the shipped library" in r.output
    r = runner.invoke(cli, ["assets", "add", str(src / "crate.obj"), "--name", "linked", "--link",
                            "--assets", str(lib_dir)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["assets", "list", "--json", "--assets", str(lib_dir)])
    assert r.exit_code == 0, r.output
    rows = {row["name"]: row for row in json.loads(r.output)}
    assert rows["crate"]["display"] == "wooden crate" and rows["crate"]["library"] == "user"
    assert rows["crate"]["triangles"] == 24 and np.allclose(rows["crate"]["dimensions"], [0.333, 0.667, 1.0], atol=2e-3)
    assert rows["linked"]["source"] == str((src / "crate.obj").resolve())
    assert rows["mug"]["library"] == "shipped" and rows["cube"]["triangles"] == 12
    r = runner.invoke(cli, ["assets", "check", "crate", "linked", "mug", "--assets", str(lib_dir)])
    assert r.exit_code == 0 and "3 ok, 0 with problems" in r.output
    (src / "crate.obj").unlink()
    r = runner.invoke(cli, ["assets", "check", "linked", "crate", "--assets", str(lib_dir)])
    assert r.exit_code == 1 and "FAIL linked" in r.output and "1 ok, 1 with problems" in r.output


@pytest.mark.bpy
def test_contact_sheet_shows_each_asset(tmp_path):
    import cv2

    r = CliRunner().invoke(cli, ["assets", "sheet", "--out", str(tmp_path / "s.png"), "--tile", "64",
                                 "--columns", "3", "star", "mug", "rubber_duck"])
    assert r.exit_code == 0, r.output
    img = cv2.imread(str(tmp_path / "s.png"))
    assert img.shape[:2] == (64 + 22, 3 * 64)
    for k in range(3):
        tile = img[:64, k * 64:(k + 1) * 64].astype(int)
        assert (np.abs(tile - [236, 236, 236]).sum(-1) > 30).mean() > 0.03   # something drawn in every tile
    duck = img[:64, 128:192].reshape(-1, 3).astype(int)   # the duck keeps its yellow texture (BGR)
    assert ((duck[:, 2] > duck[:, 0] + 60) & (duck[:, 1] > duck[:, 0] + 40)).sum() > 50


# ---------------------------------------------------------------- a rendered scene of real objects

@pytest.fixture(scope="module")
def objects_dataset(tmp_path_factory):
    from blender_scenes.batch import run

    colors = {"red": [200, 30, 30], "blue": [30, 60, 220], "natural": [255, 255, 255]}
    subsets = [{"name": "painted", "shapes": ["mug", "teddy_bear", "traffic_cone"], "colors": ["red", "blue"]},
               {"name": "textured", "shapes": ["rubber_duck", "soccer_ball"], "colors": ["natural"]}]
    d = design(["mug", "teddy_bear", "traffic_cone", "rubber_duck", "soccer_ball"], colors=colors, subsets=subsets,
               image={"width": 160, "height": 160}, camera={"elevation": 60, "distance": 13, "lens": 50},
               distractors={"count": 2})
    d["design"] = {"kind": "balanced", "scenes": 72, "subsets": subsets}
    cfg = parse_design(d, "objects.toml")
    out = tmp_path_factory.mktemp("objects") / "ds"
    run(cfg, out, limit=5, progress=False)
    return cfg, out


@pytest.mark.bpy
def test_real_assets_render_with_verified_labels(objects_dataset):
    import cv2

    from blender_scenes.labels import area_of_box
    from blender_scenes.measure import decode_mask

    cfg, out = objects_dataset
    scenes = sorted((out / "scenes" / "train").glob("*.json"))
    assert len(scenes) == 5
    seen = set()
    for path in scenes:
        rec = json.loads(path.read_text())
        image = cv2.imread(str(out / rec["image"]))[..., ::-1].astype(int)
        for o in rec["objects"]:
            mask = decode_mask(o["segmentation"])
            ys, xs = np.nonzero(mask)
            box = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            assert np.allclose(box, o["bbox"]) and mask.sum() == o["visible_pixels"]
            assert area_of_box(box, rec["width"], rec["height"]) == o["area"]
            mean = image[mask].mean(0)
            if o["color"] == "red":       # a colourable asset takes the design's colour
                assert mean[0] > mean[2] + 10, (path.name, o["shape"], mean)
            elif o["color"] == "blue":
                assert mean[2] > mean[0] + 10, (path.name, o["shape"], mean)
            elif o["shape"] == "rubber_duck":   # textured assets keep their own colours: a yellow duck
                assert min(mean[0], mean[1]) > mean[2] + 20, mean
            else:                               # a black and white ball
                assert o["shape"] == "soccer_ball" and np.ptp(mean) < 8, mean
            seen.add(o["shape"])
        q = rec["questions"][0]
        target = rec["objects"][0]
        assert q["answer"] == area_of_box(target["bbox"], rec["width"], rec["height"])
        assert q["question"] == f"Where is the {target['color']} {display_name(target['shape'])}?"
    assert len(seen) >= 3
    coco = json.loads((out / "annotations" / "train.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["mug", "teddy bear", "traffic cone", "rubber duck", "soccer ball"]
    from pycocotools.coco import COCO
    index = COCO(str(out / "annotations" / "train.json"))
    for ann in index.loadAnns(index.getAnnIds()):
        assert abs(index.annToMask(ann).sum() - ann["area"]) == 0
    from blender_scenes.audit.run import audit_dataset   # the audit's own pixel verification agrees
    report, _ = audit_dataset(out, workers=1)
    h = report["headline"]
    assert h["targets"] == 5 and h["labels_verified"] == 5, h
    assert h["failures_by_kind"]["labels"] == 0 and h["failures_by_kind"]["integrity"] == 0, report["findings"]


@pytest.mark.bpy
def test_flat_design_renders_a_user_flat_asset(tmp_path):
    from blender_scenes.batch import run

    lib_dir = tmp_path / "lib"
    lib_dir.mkdir()
    # an L-shaped outline (concave) drawn in the XY plane
    (lib_dir / "ell.obj").write_text("v 0 0 0\nv 2 0 0\nv 2 1 0\nv 1 1 0\nv 1 2 0\nv 0 2 0\nf 1 2 3\nf 1 3 4\nf 1 4 5\n"
                                     "f 1 5 6\n")
    write_manifest(lib_dir, '[assets.ell]\nfile = "ell.obj"\nup = "Z"\nkind = "flat"\ndisplay = "letter L"\n')
    d = design(["square", "ell"], style="flat", assets=lib_dir, image={"width": 96, "height": 96})
    cfg = parse_design(d, "flat.toml")
    out = tmp_path / "ds"
    run(cfg, out, limit=6, progress=False)
    coco = json.loads((out / "annotations" / "train.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["square", "letter L"]
    ells = [a for a in coco["annotations"] if a["category_id"] == 2]
    assert ells
    for a in ells:   # three quarters of the box: the notch stays empty
        x, y, w, h = a["bbox"]
        assert 0.6 < a["area"] / (w * h) < 0.9
