"""Managing a user asset library: add a mesh file to it, and check or describe assets by importing them in
Blender. bpy is imported inside the functions that render (through `render/`), so adding stays light."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from pydantic import ValidationError

from ..errors import InputError
from ..files import atomic_write_text
from .importer import toml_entry
from .library import MANIFEST, NAME, AssetEntry, load_library


def asset_rows(assets_dir: str | None, names: list[str] | None = None) -> list[dict]:
    """Every asset with its source, colourability, and (imported in bpy) triangles and dimensions."""
    from ..render.blend import reset_blender  # bpy: only where an asset is imported
    from ..render.meshes import load_asset, mesh_stats

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


def check_assets(assets_dir: str | None, names: list[str] | None = None) -> list[tuple[str, list[str]]]:
    """Import each asset in bpy; (name, problems) for each, problems empty when it is fine."""
    from ..render.blend import reset_blender  # bpy: only where an asset is imported
    from ..render.meshes import load_asset, mesh_stats, texture_problems

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
