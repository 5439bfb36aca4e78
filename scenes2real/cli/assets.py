"""Commands of the asset library: list, add, check, sheet, import-pybullet. Blender is imported (through the
library functions) only by the commands that import or render assets."""
from __future__ import annotations

import json
import os
from pathlib import Path

import click
from rich.table import Table

from blender_scenes.assets.library import ASSETS_ENV, UP_AXES

from .options import writes

# Library modules are imported inside the commands, so that `scenes2real --help` starts in ~0.7 s, not ~1.7 s.

assets_option = click.option(
    "--assets", "assets_dir", type=click.Path(file_okay=False), default=lambda: os.environ.get(ASSETS_ENV),
    help=f"A user asset folder (with manifest.toml), searched before the shipped library [default: ${ASSETS_ENV}].")


@click.group("assets")
def assets_group():
    """The shapes and objects a design can name (factors.shapes): list, add, check, contact sheet."""


@assets_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@assets_option
def list_cmd(as_json, assets_dir):
    """Name, display name, source, colourable, triangle count and normalised dimensions of every asset."""
    from rich.console import Console

    from blender_scenes.assets.manage import asset_rows

    rows = asset_rows(assets_dir)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        Console(width=200).print(asset_table(rows))


def asset_table(rows: list[dict]) -> Table:
    table = Table(title=f"{len(rows)} assets")
    for col in ("name", "display", "kind", "source", "colourable", "triangles", "dimensions", "library"):
        table.add_column(col, justify="right" if col == "triangles" else "left")
    for r in rows:
        table.add_row(r["name"], r["display"], r["kind"], r["source"], "yes" if r["colourable"] else "no (textured)",
                      str(r["triangles"]), " x ".join(f"{d:.2f}" for d in r["dimensions"]), r["library"])
    return table


@assets_group.command("add")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--name", required=True, help="The name designs use (factors.shapes).")
@click.option("--object", "obj", help=".blend only: the object or collection to use (default: every mesh).")
@click.option("--display", help="What questions call it, e.g. \"coffee mug\" (default: the name).")
@click.option("--up", type=click.Choice(UP_AXES),
              help="The file's up axis (default: Y for .obj/.fbx/.glb/.gltf, Z for .stl/.ply/.blend).")
@click.option("--textured", is_flag=True, help="Keep the file's own materials and textures (colour is fixed).")
@click.option("--flat", is_flag=True, help="A flat 2D outline in the XY plane, for flat designs.")
@click.option("--licence", default="unknown", show_default=True, help="Its licence, recorded in the manifest.")
@click.option("--link", is_flag=True, help="Record the file where it is instead of copying it.")
@assets_option
@writes("assets_dir")
def add_cmd(file, name, obj, display, up, textured, flat, licence, link, assets_dir):
    """Copy (or link) a mesh file into the user library and record it in the folder's manifest."""
    from blender_scenes.assets.manage import add_asset

    manifest = add_asset(file, name, assets_dir, obj=obj, display=display, up=up, link=link, textured=textured,
                         flat=flat, licence=licence)
    click.echo(f"added {name!r} to {manifest}; check it with: scenes2real assets check {name} --assets {assets_dir}")


@assets_group.command("check")
@click.argument("names", nargs=-1)
@assets_option
def check_cmd(names, assets_dir):
    """Import each asset (all by default) and report problems; exit 1 if any asset has one."""
    from blender_scenes.assets.manage import check_assets

    results = check_assets(assets_dir, list(names) or None)
    bad = 0
    for name, problems in results:
        bad += bool(problems)
        for p in problems:
            click.echo(f"FAIL {name}: {p}")
        if not problems:
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
@writes("out")
def sheet_cmd(out, tile, columns, names, assets_dir):
    """Render a contact sheet of every asset (or the NAMES given) with its name."""
    from blender_scenes.render.sheet import write_sheet

    n, width, height = write_sheet(out, list(names), assets_dir, tile=tile, columns=columns)
    click.echo(f"{n} assets -> {out} ({width}x{height})")


@assets_group.command("import-pybullet")
@click.option("--wheel", type=click.Path(dir_okay=False, exists=True),
              help="A pybullet wheel already downloaded (default: pip download pybullet).")
@click.option("--dest", type=click.Path(file_okay=False),
              help="Library folder to write [default: the shipped library].")
@writes("dest")
def import_pybullet_cmd(wheel, dest):
    """(Re)build the shipped real objects from pybullet's pybullet_data (zlib), with their manifest entries."""
    from blender_scenes.assets.importer import import_pybullet
    from blender_scenes.assets.library import SHIPPED_DIR

    folder = Path(dest) if dest else SHIPPED_DIR
    names = import_pybullet(folder, Path(wheel) if wheel else None)
    click.echo(f"imported {len(names)} assets: {', '.join(names)} -> {folder / 'pybullet'} and "
               f"{folder / 'manifest.toml'}")


COMMANDS = [assets_group]
