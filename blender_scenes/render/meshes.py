"""The asset loader: an asset name -> one normalised bpy Mesh (cached per process).

Files are imported with their own coordinates kept, every mesh object of the file is merged into one
mesh (world transforms applied), the manifest's up axis is turned to +Z, and the result goes through the
same normalisation as the built-in shapes (`shapes.finish_mesh`): longest side 1, centred, on the ground.
A colourable asset loses its materials (the renderer gives it the design's colour); a textured one keeps
them, and the mesh is tagged so the renderer leaves them alone."""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import bpy  # isort: skip  (first: bpy makes Blender's own modules, bmesh and mathutils, importable)
import bmesh
import numpy as np
from mathutils import Matrix, Vector

from ..assets import Asset, load_library
from ..errors import InputError
from .shapes import builtin_mesh, finish_mesh

COLOURABLE = "scenes2real_colourable"   # mesh custom property read by the solid renderer
_AXES = {"X": (1, 0, 0), "Y": (0, 1, 0), "Z": (0, 0, 1), "-X": (-1, 0, 0), "-Y": (0, -1, 0), "-Z": (0, 0, -1)}
# glTF importers always turn the format's Y-up into Blender's Z-up; undo it to get the file's coordinates
_GLTF_TO_FILE = Matrix(((1, 0, 0, 0), (0, 0, 1, 0), (0, -1, 0, 0), (0, 0, 0, 1)))

_cache: dict[tuple[str, str], bpy.types.Mesh] = {}


def asset_mesh(name: str, user_dir: str | None = None) -> bpy.types.Mesh:
    """The normalised mesh of an asset; imported once per process (and again after a Blender reset)."""
    key = (name, str(user_dir))
    mesh = _cache.get(key)
    if mesh is not None:
        try:
            mesh.name   # a factory reset frees every datablock: the cached one is then invalid
            return mesh
        except ReferenceError:
            pass
    mesh = load_asset(load_library(user_dir).get(name))
    _cache[key] = mesh
    return mesh


def mesh_source(user_dir: str | None = None):
    """The `mesh_source` callable the renderers take: shape name -> mesh."""
    return lambda name: asset_mesh(name, user_dir)


def load_asset(asset: Asset) -> bpy.types.Mesh:
    """Build the asset's normalised mesh (a new datablock); InputError names what is wrong."""
    e = asset.entry
    if e.builtin:
        mesh = builtin_mesh(e.builtin)
        mesh.name = asset.name
    else:
        mesh = _import_file(asset)
    mesh[COLOURABLE] = e.colourable
    return mesh


def up_rotation(up: str) -> Matrix:
    """The rotation that turns the file's up axis into +Z."""
    return Vector(_AXES[up]).rotation_difference(Vector((0, 0, 1))).to_matrix().to_4x4()


def _import_file(asset: Asset) -> bpy.types.Mesh:
    path = asset.path
    if not path.is_file():
        raise InputError(f"{asset.where}: field 'file': {path} not found")
    suffix = path.suffix.lower()
    before_objects = set(bpy.data.objects)
    if suffix == ".blend":
        objects = _load_blend(asset, path)
    else:
        _run_importer(asset, path, suffix)
        objects = [o for o in bpy.data.objects if o not in before_objects]
    meshes = [o for o in objects if o.type == "MESH" and len(o.data.polygons)]
    if not meshes:
        _remove(o for o in bpy.data.objects if o not in before_objects)
        raise InputError(f"{asset.where}: field 'file': {path.name} holds no mesh with faces")
    try:
        return _merge(asset, meshes, suffix)
    finally:
        _remove(o for o in bpy.data.objects if o not in before_objects)


def _run_importer(asset: Asset, path: Path, suffix: str) -> None:
    p = str(path)
    try:
        with _silenced():
            if suffix == ".obj":   # identity axes: the manifest's up axis is applied afterwards
                bpy.ops.wm.obj_import(filepath=p, forward_axis="Y", up_axis="Z")
            elif suffix == ".stl":
                bpy.ops.wm.stl_import(filepath=p, forward_axis="Y", up_axis="Z")
            elif suffix == ".ply":
                bpy.ops.wm.ply_import(filepath=p, forward_axis="Y", up_axis="Z")
            elif suffix == ".fbx":
                bpy.ops.import_scene.fbx(filepath=p, use_manual_orientation=True, axis_forward="Y", axis_up="Z")
            elif suffix in (".glb", ".gltf"):
                bpy.ops.import_scene.gltf(filepath=p)
            else:
                raise InputError(f"{asset.where}: field 'file': unsupported format {suffix!r}")
    except RuntimeError as err:   # importers report unreadable files as RuntimeError
        first = str(err).strip().splitlines()[-1] if str(err).strip() else "import failed"
        raise InputError(f"{asset.where}: field 'file': {path.name} could not be imported ({first})") from None


@contextlib.contextmanager
def _silenced():
    """Importers print timing lines to the C-level stdout; keep the user's terminal clean."""
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(devnull)
        os.close(saved)


def _load_blend(asset: Asset, path: Path) -> list[bpy.types.Object]:
    want = asset.entry.object
    try:
        with bpy.data.libraries.load(str(path), link=False) as (src, dst):
            names_o, names_c = list(src.objects), list(src.collections)
            if want is None:
                dst.objects = names_o
            elif want in names_o:
                dst.objects = [want]
            elif want in names_c:
                dst.collections = [want]
    except OSError as err:
        raise InputError(f"{asset.where}: field 'file': {path.name} is not a readable .blend ({err})") from None
    if want is not None and want not in names_o and want not in names_c:
        raise InputError(f"{asset.where}: field 'object': {want!r} is not an object or collection of {path.name}; "
                         f"it holds objects: {', '.join(names_o) or '(none)'}")
    if want is not None and want in names_c and want not in names_o:
        coll = dst.collections[0]
        objects = list(coll.all_objects)
        bpy.data.collections.remove(coll)
        return objects
    return [o for o in dst.objects if o is not None]


def _merge(asset: Asset, objects: list[bpy.types.Object], suffix: str) -> bpy.types.Mesh:
    e = asset.entry
    fix = up_rotation(e.up_axis) @ (_GLTF_TO_FILE if suffix in (".glb", ".gltf") else Matrix.Identity(4))
    bm = bmesh.new()
    materials: list = []
    for o in objects:
        part = bmesh.new()
        part.from_mesh(o.data)
        bmesh.ops.transform(part, matrix=fix @ o.matrix_world, verts=part.verts)
        offset = len(materials)
        materials.extend(o.data.materials)
        for f in part.faces:
            f.material_index = 0 if e.colourable else f.material_index + offset
        tmp = bpy.data.meshes.new("part")
        part.to_mesh(tmp)
        part.free()
        bm.from_mesh(tmp)   # appends: one mesh for the whole asset
        bpy.data.meshes.remove(tmp)
    co = np.array([v.co[:] for v in bm.verts])
    extent = co.max(0) - co.min(0) if len(co) else np.zeros(3)
    if extent.max() <= 1e-9:
        bm.free()
        raise InputError(f"{asset.where}: field 'file': {asset.path.name} has zero size (all vertices at one point)")
    mesh = finish_mesh(bm, asset.name, flat=asset.kind == "flat", recalc_normals=False)
    if not e.colourable:
        for m in materials:
            mesh.materials.append(m)
    return mesh


def _remove(objects) -> None:
    for o in list(objects):
        data = o.data
        bpy.data.objects.remove(o)
        if isinstance(data, bpy.types.Mesh) and data.users == 0:
            bpy.data.meshes.remove(data)


def texture_problems(mesh: bpy.types.Mesh) -> list[str]:
    """Image textures of a mesh's materials whose pixels cannot be found."""
    out = []
    for mat in mesh.materials:
        if mat is None or not mat.use_nodes:
            continue
        for node in mat.node_tree.nodes:
            img = getattr(node, "image", None)
            if img is None or img.packed_file is not None:
                continue
            if not os.path.isfile(bpy.path.abspath(img.filepath, library=img.library)):
                out.append(f"texture {img.filepath!r} of material {mat.name!r} not found")
    return out


def mesh_stats(mesh: bpy.types.Mesh) -> dict:
    """Triangle count and bounding-box dimensions of a (normalised) mesh."""
    co = np.empty(len(mesh.vertices) * 3)
    mesh.vertices.foreach_get("co", co)
    co = co.reshape(-1, 3)
    sizes = np.empty(len(mesh.polygons), dtype=np.int64)
    mesh.polygons.foreach_get("loop_total", sizes)
    dims = co.max(0) - co.min(0) if len(co) else np.zeros(3)
    return {"triangles": int((sizes - 2).sum()), "dimensions": [round(float(d), 3) for d in dims],
            "materials": len(mesh.materials)}
