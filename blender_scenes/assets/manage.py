"""Managing a user asset library: add a mesh file to it, and check or describe assets by importing them in
Blender. bpy is imported inside the functions that render (through `render/`), so adding stays light."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote

from pydantic import ValidationError

from ..errors import InputError
from ..files import atomic_write_text, temporary_name
from ..messages import explain, one_line
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


_MTL_MAP = re.compile(r"\s*(map_\w+|bump|disp|decal|norm|refl)\s")   # texture statements; the file is last
_URI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")


def _references(path: Path) -> Iterator[tuple[Path, str, str]]:
    """(file that names it, its field, the reference as written) for each file an .obj (its .mtl and textures)
    or a .gltf (buffers, images) needs; a reference is relative to the folder of the file that names it."""
    if path.suffix.lower() == ".obj":
        for ln in path.read_text(errors="replace").splitlines():
            if ln.startswith("mtllib") and len(ln.split(None, 1)) == 2:
                ref = ln.split(None, 1)[1].strip()
                yield path, "mtllib", ref
                mtl = path.parent / ref   # read only once the caller has accepted the reference
                if mtl.is_file():
                    for m in mtl.read_text(errors="replace").splitlines():
                        words = m.split()   # options come first: `map_Kd -bm 1 wood.png`
                        if _MTL_MAP.match(m) and len(words) > 1:
                            yield mtl, words[0], words[-1]
    elif path.suffix.lower() == ".gltf":
        try:
            doc = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InputError(f"{path}: not valid glTF JSON ({err})") from None
        if not isinstance(doc, dict):
            raise InputError(f"{path}: not a glTF document (expected a JSON object at the top level)")
        for key in ("buffers", "images"):
            for i, item in enumerate(doc.get(key) or []):
                uri = item.get("uri") if isinstance(item, dict) else None
                if uri and not (isinstance(uri, str) and uri.startswith("data:")):   # data: is embedded
                    yield path, f"{key}[{i}].uri", uri


def files_to_copy(src: Path) -> list[tuple[Path, Path]]:
    """(file, its path inside the asset's folder) for the mesh file and every file it references. A reference
    must name a file inside the mesh file's folder, symlinks followed: else one InputError naming it (so
    adding a downloaded asset can never copy a file from elsewhere, or write outside the library)."""
    base, real_base = src.parent, src.parent.resolve()
    out = [(src, Path(src.name))]
    for referrer, field, ref in _references(src):
        gltf = referrer.suffix.lower() == ".gltf"
        if gltf and _URI_SCHEME.match(ref):   # http:, file:, ...: not a file beside it
            raise InputError(f"{referrer}: {field} {ref!r}: expected a relative path to a file inside {real_base} "
                             f"(or an embedded data: URI)")
        rel = Path(os.path.normpath(referrer.parent / (unquote(ref) if gltf else ref)))   # glTF URIs: %-encoded
        lexical, real = Path(os.path.relpath(rel, base)), rel.resolve()
        if lexical.parts[:1] == ("..",) or not real.is_relative_to(real_base):   # as written, and symlinks followed
            raise InputError(f"{referrer}: {field} {ref!r} names {real}, outside the folder {real_base}; expected "
                             f"a file inside it (copy it there and name it relatively)")
        if real.is_file() and all(dest != lexical for _, dest in out):
            out.append((real, lexical))   # a missing file is not copied (as before); the check reports it
    return out


def add_asset(file: str, name: str, assets_dir: str | None, obj: str | None = None, display: str | None = None,
              up: str | None = None, link: bool = False, textured: bool = False, flat: bool = False,
              licence: str = "unknown", origin: str = "") -> Path:
    """Copy (or link) a mesh file into the user library and record it in that folder's manifest. A copy is
    made whole in a temporary folder and renamed into place; nothing is copied when a reference is refused."""
    if not assets_dir:
        raise InputError("--assets: name the user asset folder to add to (or set $SCENES2REAL_ASSETS)")
    src = Path(file)
    if not src.is_file():
        raise InputError(f"{src}: file not found (expected a mesh file: .blend, .glb, .gltf, .obj, .fbx, .ply, .stl)")
    if not NAME.fullmatch(name):   # the name is a folder of the library: no separators, no '..'
        raise InputError(f"--name: {name!r}: expected letters, digits, '_' or '-' (starting with a letter or digit)")
    folder = Path(assets_dir)
    lib = load_library(folder) if folder.is_dir() else load_library(None)
    if name in lib:
        where = "your library" if name in lib.user else "the shipped library"
        raise InputError(f"--name: asset {name!r} already exists in {where}; choose another name")
    dest = folder / name
    if not link and (dest.exists() or dest.is_symlink()):
        raise InputError(f"--name: {dest} already exists (not an asset of {folder / MANIFEST}); remove it or "
                         f"choose another name")
    target = src.resolve() if link else Path(name) / src.name
    fields = {"display": display, "file": str(target), "object": obj, "up": up, "kind": "flat" if flat else None,
              "colourable": not textured, "licence": licence, "origin": origin or f"added from {src.resolve()}"}
    given = {k: v for k, v in fields.items() if v not in (None, "")}
    try:
        AssetEntry.model_validate(given)
    except ValidationError as err:
        raise InputError(one_line(f"{src}: {explain(err, AssetEntry, given).message}")) from None
    copies = [] if link else files_to_copy(src)   # every reference checked before anything is written
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / MANIFEST
    text = manifest.read_text(encoding="utf-8") if manifest.is_file() else "# User assets (scenes2real assets add)\n"
    if link:
        atomic_write_text(manifest, text.rstrip("\n") + "\n\n" + toml_entry(name, fields))
        return manifest
    tmp = temporary_name(dest)
    try:
        for f, rel in copies:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, tmp / rel)
        tmp.rename(dest)
        try:
            atomic_write_text(manifest, text.rstrip("\n") + "\n\n" + toml_entry(name, fields))
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)   # no asset folder the manifest does not name
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
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
