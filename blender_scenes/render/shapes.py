"""Built-in meshes: flat 2D stimuli (in the XY plane) and 3D primitives (resting on z = 0).

Every mesh is normalised the same way: longest side of its bounding box = 1, bounding box centred on the
origin in XY (so a placement point is the box centre, which is what the label rule reads), and 3D
meshes rest on the ground. `size` in a design then means the same for every shape."""
from __future__ import annotations

import math

import bmesh
import bpy
import numpy as np
from mathutils import Vector
from mathutils.geometry import tessellate_polygon

from ..assets import FLAT_SHAPES, SOLID_SHAPES   # the names live bpy-free, for config checks

__all__ = ["FLAT_SHAPES", "SOLID_SHAPES", "builtin_mesh", "finish_mesh", "mesh_vertices"]


def _polygon(name: str, points: list[tuple[float, float]]) -> bpy.types.Mesh:
    bm = bmesh.new()
    verts = [bm.verts.new((x, y, 0.0)) for x, y in points]
    # concave outlines (star, plus) need explicit triangles; bmesh's triangulate filled the plus's notches
    for tri in tessellate_polygon([[Vector((x, y, 0.0)) for x, y in points]]):
        bm.faces.new([verts[i] for i in tri])
    return finish_mesh(bm, name, flat=True)


def _regular(n: int, start: float = math.pi / 2) -> list[tuple[float, float]]:
    return [(math.cos(start + 2 * math.pi * k / n), math.sin(start + 2 * math.pi * k / n)) for k in range(n)]


def _flat_points(shape: str) -> list[tuple[float, float]]:
    if shape == "square":
        return [(-1, -1), (1, -1), (1, 1), (-1, 1)]
    if shape == "circle":
        return _regular(96)
    if shape == "triangle":
        return _regular(3)
    if shape == "diamond":
        return [(0, -1), (0.7, 0), (0, 1), (-0.7, 0)]
    if shape == "hexagon":
        return _regular(6, 0.0)
    if shape == "star":
        pts = []
        for k in range(10):
            r = 1.0 if k % 2 == 0 else 0.382
            a = math.pi / 2 + math.pi * k / 5
            pts.append((r * math.cos(a), r * math.sin(a)))
        return pts
    if shape == "plus":
        a = 1 / 3
        return [(-a, -1), (a, -1), (a, -a), (1, -a), (1, a), (a, a), (a, 1), (-a, 1), (-a, a), (-1, a),
                (-1, -a), (-a, -a)]
    if shape == "heart":
        pts = []
        for k in range(96):
            t = 2 * math.pi * k / 96
            pts.append((16 * math.sin(t) ** 3, 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t)
                        - math.cos(4 * t)))
        return pts
    raise KeyError(shape)


def _solid(shape: str, name: str) -> bpy.types.Mesh:
    bm = bmesh.new()
    smooth = True
    if shape == "cube":
        bmesh.ops.create_cube(bm, size=1.0)
        smooth = False
    elif shape == "sphere":
        bmesh.ops.create_uvsphere(bm, u_segments=48, v_segments=24, radius=0.5)
    elif shape == "cylinder":
        bmesh.ops.create_cone(bm, cap_ends=True, segments=48, radius1=0.5, radius2=0.5, depth=1.0)
    elif shape == "cone":
        bmesh.ops.create_cone(bm, cap_ends=True, segments=48, radius1=0.5, radius2=0.0, depth=1.0)
    elif shape == "pyramid":
        bmesh.ops.create_cone(bm, cap_ends=True, segments=4, radius1=0.5, radius2=0.0, depth=1.0)
        smooth = False
    elif shape == "torus":
        _torus(bm, 0.5, 0.18, 48, 16)
    elif shape == "capsule":
        bmesh.ops.create_uvsphere(bm, u_segments=32, v_segments=16, radius=0.5)
        for v in bm.verts:   # stretch the sphere's halves apart into a capsule
            v.co.z += 0.5 if v.co.z > 1e-6 else (-0.5 if v.co.z < -1e-6 else 0.0)
    else:
        raise KeyError(shape)
    if smooth:   # smooth curved sides only: caps stay flat (Blender 4.1+ has no auto-smooth flag)
        bm.normal_update()
        for f in bm.faces:
            f.smooth = shape in ("sphere", "torus", "capsule") or abs(f.normal.z) < 0.99
    return finish_mesh(bm, name, flat=False)


def _torus(bm, major: float, minor: float, n_major: int, n_minor: int) -> None:
    rings = []
    for i in range(n_major):
        a = 2 * math.pi * i / n_major
        ring = []
        for j in range(n_minor):
            b = 2 * math.pi * j / n_minor
            r = major + minor * math.cos(b)
            ring.append(bm.verts.new((r * math.cos(a), r * math.sin(a), minor * math.sin(b))))
        rings.append(ring)
    for i in range(n_major):
        for j in range(n_minor):
            a, b = rings[i], rings[(i + 1) % n_major]
            bm.faces.new((a[j], b[j], b[(j + 1) % n_minor], a[(j + 1) % n_minor]))


def finish_mesh(bm, name: str, flat: bool, recalc_normals: bool = True) -> bpy.types.Mesh:
    """Normalise a bmesh (longest bbox side 1, bbox centred in XY; flat: z = 0, else resting on z = 0)
    and turn it into a new mesh. Built-in shapes and imported assets both go through here."""
    co = np.array([v.co[:] for v in bm.verts])
    lo, hi = co.min(0), co.max(0)
    scale = 1.0 / max(hi - lo)
    centre = (lo + hi) / 2
    for v in bm.verts:
        x, y, z = (np.array(v.co[:]) - centre) * scale
        v.co = (x, y, 0.0 if flat else z + 0.5 * (hi[2] - lo[2]) * scale)
    if recalc_normals:
        bmesh.ops.recalc_face_normals(bm, faces=bm.faces[:])
    mesh = bpy.data.meshes.new(name)
    bm.to_mesh(mesh)
    bm.free()
    return mesh


def builtin_mesh(shape: str) -> bpy.types.Mesh:
    """A new normalised mesh for a built-in shape name (KeyError if it is not built in)."""
    if shape in FLAT_SHAPES:
        return _polygon(shape, _flat_points(shape))
    if shape in SOLID_SHAPES:
        return _solid(shape, shape)
    raise KeyError(shape)


def mesh_vertices(mesh: bpy.types.Mesh) -> np.ndarray:
    co = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
    mesh.vertices.foreach_get("co", co)
    return co.reshape(-1, 3)
