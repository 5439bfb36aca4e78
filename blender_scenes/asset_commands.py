"""`scenes2real assets ...`: list, add, check and look at the asset library, and build its shipped
objects from pybullet. Thin shells over `assets.py`, `asset_import.py` and `render/` (bpy imported
inside the commands that render)."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import click

from .errors import InputError

assets_option = click.option(
    "--assets", "assets_dir", type=click.Path(file_okay=False), default=lambda: os.environ.get("SCENES2REAL_ASSETS"),
    help="A user asset folder (with manifest.toml), searched before the shipped library; for a design, "
         "instead of its own `assets` key [default: $SCENES2REAL_ASSETS].")


@click.group("assets")
def assets_group():
    """The shapes and objects a design can name (factors.shapes): list, add, check, contact sheet."""


def asset_rows(assets_dir: str | None, names: list[str] | None = None) -> list[dict]:
    """Every asset with its source, colourability, and (imported in bpy) triangles and dimensions."""
    from .assets import load_library
    from .render.assets import load_asset, mesh_stats
    from .render.blend import reset_blender

    lib = load_library(assets_dir)
    reset_blender()
    rows = []
    for name in names or lib.names():
        a = lib.get(name)
        row = {"name": name, "display": a.display, "kind": a.kind, "source": a.source,
               "colourable": a.entry.colourable, "library": "user" if name in lib.user else "shipped",
               "licence": a.entry.licence}
        row.update(mesh_stats(load_asset(a)))
        rows.append(row)
    return rows


@assets_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@assets_option
def list_cmd(as_json, assets_dir):
    """Name, display name, source, colourable, triangle count and normalised dimensions of every asset."""
    rows = asset_rows(assets_dir)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} assets")
    for col in ("name", "display", "kind", "source", "colourable", "triangles", "dimensions", "library"):
        table.add_column(col, justify="right" if col == "triangles" else "left")
    for r in rows:
        table.add_row(r["name"], r["display"], r["kind"], r["source"], "yes" if r["colourable"] else "no (textured)",
                      str(r["triangles"]), " x ".join(f"{d:.2f}" for d in r["dimensions"]), r["library"])
    Console(width=200).print(table)


def _referenced_files(path: Path) -> list[Path]:
    """Files an .obj (its .mtl and textures) or a .gltf (buffers, images) needs beside it."""
    out: list[Path] = []
    if path.suffix.lower() == ".obj":
        for ln in path.read_text(errors="replace").splitlines():
            if ln.startswith("mtllib"):
                mtl = path.parent / ln.split(None, 1)[1].strip()
                if mtl.is_file():
                    out.append(mtl)
                    for m in mtl.read_text(errors="replace").splitlines():
                        if re.match(r"\s*(map_\w+|bump|disp|norm)\s", m):
                            tex = path.parent / m.split()[-1]
                            if tex.is_file():
                                out.append(tex)
    elif path.suffix.lower() == ".gltf":
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise InputError(f"{path}: not valid glTF JSON ({err})") from None
        for item in doc.get("buffers", []) + doc.get("images", []):
            uri = item.get("uri", "")
            if uri and not uri.startswith("data:") and (path.parent / uri).is_file():
                out.append(path.parent / uri)
    return out


def add_asset(file: str, name: str, assets_dir: str | None, obj: str | None = None, display: str | None = None,
              up: str | None = None, link: bool = False, textured: bool = False, flat: bool = False,
              licence: str = "unknown", origin: str = "") -> Path:
    """Copy (or link) a mesh file into the user library and record it in that folder's manifest."""
    from .asset_import import toml_entry
    from .assets import MANIFEST, NAME, AssetEntry, load_library
    from .files import atomic_write_text

    if not assets_dir:
        raise InputError("--assets: name the user asset folder to add to (or set $SCENES2REAL_ASSETS)")
    src = Path(file)
    if not src.is_file():
        raise InputError(f"{src}: file not found (expected a mesh file: .blend, .glb, .gltf, .obj, .fbx, .ply, .stl)")
    if not NAME.match(name):
        raise InputError(f"--name: {name!r}: expected letters, digits, '_' or '-'")
    folder = Path(assets_dir)
    folder.mkdir(parents=True, exist_ok=True)
    lib = load_library(folder)
    if name in lib:
        where = "your library" if name in lib.user else "the shipped library"
        raise InputError(f"--name: asset {name!r} already exists in {where}; choose another name")
    target = src.resolve() if link else Path(name) / src.name
    fields = {"display": display, "file": str(target), "object": obj, "up": up, "kind": "flat" if flat else None,
              "colourable": not textured, "licence": licence, "origin": origin or f"added from {src.resolve()}"}
    from pydantic import ValidationError
    try:
        AssetEntry.model_validate({k: v for k, v in fields.items() if v not in (None, "")})
    except ValidationError as err:
        e = err.errors()[0]
        raise InputError(f"{src}: {e['msg'].removeprefix('Value error, ')}") from None
    if not link:
        (folder / name).mkdir(exist_ok=True)
        for f in [src, *_referenced_files(src)]:
            dest = folder / name / f.relative_to(src.parent)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest)
    manifest = folder / MANIFEST
    text = manifest.read_text(encoding="utf-8") if manifest.is_file() else "# User assets (scenes2real assets add)\n"
    atomic_write_text(manifest, text.rstrip("\n") + "\n\n" + toml_entry(name, fields))
    return manifest


@assets_group.command("add")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--name", required=True, help="The name designs use (factors.shapes).")
@click.option("--object", "obj", help=".blend only: the object or collection to use (default: every mesh).")
@click.option("--display", help="What questions call it, e.g. \"coffee mug\" (default: the name).")
@click.option("--up", type=click.Choice(["Z", "Y", "X", "-Z", "-Y", "-X"]),
              help="The file's up axis (default: Y for .obj/.fbx/.glb/.gltf, Z for .stl/.ply/.blend).")
@click.option("--textured", is_flag=True, help="Keep the file's own materials and textures (colour is fixed).")
@click.option("--flat", is_flag=True, help="A flat 2D outline in the XY plane, for flat designs.")
@click.option("--licence", default="unknown", show_default=True, help="Its licence, recorded in the manifest.")
@click.option("--link", is_flag=True, help="Record the file where it is instead of copying it.")
@assets_option
def add_cmd(file, name, obj, display, up, textured, flat, licence, link, assets_dir):
    """Copy (or link) a mesh file into the user library and record it in the folder's manifest."""
    manifest = add_asset(file, name, assets_dir, obj=obj, display=display, up=up, link=link, textured=textured,
                         flat=flat, licence=licence)
    click.echo(f"added {name!r} to {manifest}; check it with: scenes2real assets check {name} --assets {assets_dir}")


def check_assets(assets_dir: str | None, names: list[str] | None = None) -> list[tuple[str, list[str]]]:
    """Import each asset in bpy; (name, problems) for each, problems empty when it is fine."""
    from .assets import load_library
    from .render.assets import load_asset, mesh_stats, texture_problems
    from .render.blend import reset_blender

    lib = load_library(assets_dir)
    reset_blender()
    out = []
    for name in names or lib.names():
        if name not in lib:
            out.append((name, [f"unknown asset; known assets: {', '.join(lib.names())}"]))
            continue
        try:
            mesh = load_asset(lib.get(name))
        except InputError as err:
            out.append((name, [str(err)]))
            continue
        problems = texture_problems(mesh)
        stats = mesh_stats(mesh)
        if stats["triangles"] == 0:
            problems.append("no faces")
        if not lib.get(name).entry.colourable and stats["materials"] == 0:
            problems.append("colourable = false but the file has no materials (nothing to keep)")
        out.append((name, [f"{lib.get(name).where}: {p}" for p in problems]))
    return out


@assets_group.command("check")
@click.argument("names", nargs=-1)
@assets_option
def check_cmd(names, assets_dir):
    """Import each asset (all by default) and report problems; exit 1 if any asset has one."""
    results = check_assets(assets_dir, list(names) or None)
    bad = 0
    for name, problems in results:
        if problems:
            bad += 1
            for p in problems:
                click.echo(f"FAIL {name}: {p}")
        else:
            click.echo(f"ok   {name}")
    click.echo(f"{len(results) - bad} ok, {bad} with problems")
    if bad:
        raise SystemExit(1)


@assets_group.command("sheet")
@click.option("--out", default="sheet.png", show_default=True, type=click.Path(dir_okay=False))
@click.option("--tile", default=160, show_default=True, type=click.IntRange(48, 1024), help="Tile side in pixels.")
@click.option("--columns", default=7, show_default=True, type=click.IntRange(1, 64))
@click.argument("names", nargs=-1)
@assets_option
def sheet_cmd(out, tile, columns, names, assets_dir):
    """Render a contact sheet of every asset (or the NAMES given) with its name."""
    import cv2

    from .assets import load_library
    from .files import atomic_write_bytes
    from .render.blend import reset_blender
    from .render.sheet import render_sheet

    lib = load_library(assets_dir)
    for n in names:
        lib.get(n)
    reset_blender()
    image = render_sheet(lib, list(names) or None, tile=tile, columns=columns)
    ok, png = cv2.imencode(".png", image[..., ::-1])
    atomic_write_bytes(out, png.tobytes())
    click.echo(f"{len(names) or len(lib.names())} assets -> {out} ({image.shape[1]}x{image.shape[0]})")


@assets_group.command("import-pybullet")
@click.option("--wheel", type=click.Path(dir_okay=False, exists=True),
              help="A pybullet wheel already downloaded (default: pip download pybullet).")
@click.option("--dest", type=click.Path(file_okay=False), help="Library folder to write [default: the shipped assets/].")
def import_pybullet_cmd(wheel, dest):
    """(Re)build the shipped real objects from pybullet's pybullet_data (zlib), with their manifest entries."""
    from .asset_import import import_pybullet
    from .assets import SHIPPED_DIR

    names = import_pybullet(Path(dest) if dest else SHIPPED_DIR, Path(wheel) if wheel else None)
    click.echo(f"imported {len(names)} assets: {', '.join(names)}")
