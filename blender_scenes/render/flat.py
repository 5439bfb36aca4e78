"""Flat 2D stimuli: an orthographic top-down camera over a plain background, unlit colours.

1 world unit = 1 pixel, so a placement is a pixel position. Such a scene of non-overlapping objects is
exactly a composition of per-object renders: the renderer draws each distinct (shape, size, sub-pixel
phase) once, alone (coverage with anti-aliasing, and a one-sample mask), then composites scenes in
linear light. `render_full` renders a whole scene in Blender instead; the tests hold the two equal."""
from __future__ import annotations

import functools
import hashlib
import io
import math
import os
import time
from pathlib import Path

import bpy
import numpy as np

from ..config import DesignFile
from ..files import atomic_write_bytes
from ..plan import SceneSpec
from .blend import Scratch, index_color, linear_to_srgb8, new_scene, set_index_pass, srgb_to_linear, workbench_aa
from .shapes import builtin_mesh

PAD = 3   # pixels around a sprite: room for the anti-aliasing filter's footprint


class FlatRenderer:
    def __init__(self, cfg: DesignFile, scratch: Scratch, mesh_source=builtin_mesh, shared: str | Path | None = None):
        self.cfg = cfg
        self.W, self.H = cfg.image.width, cfg.image.height
        self.cell_w, self.cell_h = self.W / cfg.grid.cols, self.H / cfg.grid.rows
        self.scratch = scratch
        self.mesh_source = mesh_source
        self.meshes: dict[str, bpy.types.Mesh] = {}
        self.sprites: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}   # key -> (coverage, mask) tiles
        self.shared = Path(shared) if shared else None   # the job's sprite folder, shared by its workers
        self.bg_lin = np.array(srgb_to_linear(cfg.image.background), dtype=np.float64)
        self.colours_lin: dict[str, np.ndarray] = {}
        self.aa = workbench_aa(cfg.render.samples)

    # -- geometry ---------------------------------------------------------------------------------
    def centre(self, cell: tuple[int, int]) -> tuple[float, float]:
        r, c = cell
        return (c + 0.5) * self.cell_w, (r + 0.5) * self.cell_h

    def side_px(self, size: str) -> float:
        return self.cfg.factors.sizes[size] * min(self.cell_w, self.cell_h)

    def mesh(self, shape: str) -> bpy.types.Mesh:
        if shape not in self.meshes:
            self.meshes[shape] = self.mesh_source(shape)
        return self.meshes[shape]

    def pose(self, obj, width: int, height: int) -> dict:
        """World pose of a spec object in a width x height orthographic frame (1 unit = 1 px)."""
        cx, cy = self.centre(obj.cell)
        s = self.side_px(obj.size)
        return {"location": [cx - width / 2, height / 2 - cy, 0.0], "rotation_euler": [0.0, 0.0, 0.0],
                "scale": [s, s, 1.0]}

    def _camera_scene(self, name: str, width: int, height: int) -> bpy.types.Scene:
        scene = new_scene(name, width, height)
        cam = bpy.data.cameras.new(f"{name}-cam")
        cam.type = "ORTHO"
        cam.ortho_scale = max(width, height)
        cam.clip_start, cam.clip_end = 0.1, 100.0
        cam_obj = bpy.data.objects.new(f"{name}-cam", cam)
        cam_obj.location = (0.0, 0.0, 10.0)
        scene.collection.objects.link(cam_obj)
        scene.camera = cam_obj
        return scene

    def _add(self, scene, shape: str, pose: dict, name: str) -> bpy.types.Object:
        o = bpy.data.objects.new(name, self.mesh(shape))
        o.location, o.rotation_euler, o.scale = pose["location"], pose["rotation_euler"], pose["scale"]
        scene.collection.objects.link(o)
        return o

    @staticmethod
    def _remove(scene) -> None:
        for o in list(scene.collection.objects):
            data = o.data
            bpy.data.objects.remove(o)
            if isinstance(data, bpy.types.Camera):
                bpy.data.cameras.remove(data)
        world = scene.world
        bpy.data.scenes.remove(scene)
        if world:
            bpy.data.worlds.remove(world)

    # -- sprites ----------------------------------------------------------------------------------
    def sprite_key(self, obj) -> tuple:
        cx, cy = self.centre(obj.cell)
        return (obj.shape, obj.size, round(cx - math.floor(cx), 6), round(cy - math.floor(cy), 6))

    def prepare(self, objects) -> None:
        """Render every sprite these objects need and the cache lacks (two passes each).

        Each sprite is drawn alone, centred in a frame whose size depends on its own size only: its
        pixels are then a function of its key alone, never of which other sprites a job needs (in a
        shared atlas, float rounding of the positions changed anti-aliased edges by one level)."""
        for key in sorted({self.sprite_key(o) for o in objects} - self.sprites.keys()):
            self.sprites[key] = self._shared_sprite(key)

    def _shared_sprite(self, key: tuple) -> tuple[np.ndarray, np.ndarray]:
        """A sprite another worker of the job has drawn (its pixels are a function of its key: loading them
        gives the same bytes as drawing them), else drawn here and shared. Workers start on the same sprites at
        once: a worker claims a sprite before drawing it, and the others wait for it (a while, then draw it)."""
        if self.shared is None:
            return self._render_sprite(key)
        path = self.shared / f"{hashlib.sha256(repr(key).encode()).hexdigest()[:24]}.npz"
        sprite = _load_sprite(path)
        if sprite is None and not _claim(path.with_suffix(".claim")):
            deadline = time.monotonic() + SPRITE_WAIT_S
            while sprite is None and time.monotonic() < deadline:
                time.sleep(0.002)
                sprite = _load_sprite(path)
        if sprite is None:
            sprite = self._render_sprite(key)
            buf = io.BytesIO()
            np.savez(buf, coverage=sprite[0], mask=sprite[1])
            atomic_write_bytes(path, buf.getvalue())
        return sprite

    def _render_sprite(self, key: tuple) -> tuple[np.ndarray, np.ndarray]:
        shape, size, fx, fy = key
        s = self.side_px(size)
        tile = int(math.ceil(s)) + 2 * PAD + 2
        scene = self._camera_scene("sprite", tile, tile)
        shading = scene.display.shading
        scene.render.engine = "BLENDER_WORKBENCH"
        shading.light, shading.color_type, shading.single_color = "FLAT", "SINGLE", (1.0, 1.0, 1.0)
        scene.view_settings.view_transform = "Raw"
        scene.render.film_transparent = True
        scene.render.image_settings.color_mode = "RGBA"
        scene.render.image_settings.color_depth = "16"
        c = tile // 2
        pose = {"location": [c + fx - tile / 2, tile / 2 - (c + fy), 0.0],
                "rotation_euler": [0.0, 0.0, 0.0], "scale": [s, s, 1.0]}
        self._add(scene, shape, pose, "sprite")
        scene.display.render_aa = self.aa
        coverage = self.scratch.render(scene, "sprite-aa")[..., 3].astype(np.float64) / 65535.0
        scene.display.render_aa = "OFF"
        mask = self.scratch.render(scene, "sprite-mask")[..., 3] > 32767
        self._remove(scene)
        return coverage, mask

    # -- scenes ---------------------------------------------------------------------------------
    def render(self, spec: SceneSpec) -> tuple[np.ndarray, np.ndarray, list[dict]]:
        """Composite: (8-bit RGB image, object-index map with id k+1 for spec.objects[k], poses).

        The image is an RGB view of a BGR buffer: `write_scene` flips it back to the contiguous buffer OpenCV
        encodes without a copy (a strided channel copy of a whole frame costs as much as its PNG encoding).
        Linear light is composited only inside the box around the objects' tiles: elsewhere the background's
        bytes are copied, the same bytes as compositing the whole frame."""
        self.prepare(spec.objects)
        bgr = self.background_bgr.copy()
        index = np.zeros((self.H, self.W), np.uint8)
        tiles = []
        for k, obj in enumerate(spec.objects):
            coverage, mask = self.sprites[self.sprite_key(obj)]
            tile = coverage.shape[0]
            cx, cy = self.centre(obj.cell)
            x0, y0 = math.floor(cx) - tile // 2, math.floor(cy) - tile // 2
            ys, xs = slice(max(0, y0), min(self.H, y0 + tile)), slice(max(0, x0), min(self.W, x0 + tile))
            ts = (slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0))
            tiles.append((ys, xs, ts, coverage, mask, self._colour_lin(obj.color)))
        if tiles:
            by0, bx0 = min(t[0].start for t in tiles), min(t[1].start for t in tiles)
            by1, bx1 = max(t[0].stop for t in tiles), max(t[1].stop for t in tiles)
            lin = np.empty((by1 - by0, bx1 - bx0, 3), np.float64)
            lin[:] = self.bg_lin
            for k, (ys, xs, ts, coverage, mask, colour) in enumerate(tiles):
                ly, lx = slice(ys.start - by0, ys.stop - by0), slice(xs.start - bx0, xs.stop - bx0)
                a = coverage[ts][..., None]
                lin[ly, lx] = a * colour + (1.0 - a) * lin[ly, lx]   # "over" in linear light, as Blender blends
                index[ys, xs][mask[ts]] = k + 1
            for ys, xs, *_ in tiles:   # only object regions differ from the background
                region = lin[ys.start - by0:ys.stop - by0, xs.start - bx0:xs.stop - bx0]
                bgr[ys, xs] = linear_to_srgb8(region)[..., ::-1]
        return bgr[..., ::-1], index, [self.pose(o, self.W, self.H) for o in spec.objects]

    @functools.cached_property
    def background_bgr(self) -> np.ndarray:
        image = np.empty((self.H, self.W, 3), np.uint8)
        image[:] = linear_to_srgb8(self.bg_lin)[::-1]
        return image

    def _colour_lin(self, color: str) -> np.ndarray:
        if color not in self.colours_lin:
            self.colours_lin[color] = np.array(srgb_to_linear(self.cfg.factors.colors[color]))
        return self.colours_lin[color]

    def render_full(self, spec: SceneSpec) -> tuple[np.ndarray, np.ndarray, list[dict]]:
        """The same scene rendered whole by Blender (beauty pass, then the index pass)."""
        scene = self._camera_scene("flat", self.W, self.H)
        scene.render.engine = "BLENDER_WORKBENCH"
        scene.display.render_aa = self.aa
        scene.display.shading.light, scene.display.shading.color_type = "FLAT", "MATERIAL"
        scene.world.color = self.bg_lin
        scene.render.image_settings.color_mode = "RGB"
        poses = [self.pose(o, self.W, self.H) for o in spec.objects]
        materials = []
        for k, (obj, pose) in enumerate(zip(spec.objects, poses)):
            o = self._add(scene, obj.shape, pose, f"obj{k}")
            mat = bpy.data.materials.new(f"flat-{obj.color}")
            mat.diffuse_color = (*srgb_to_linear(self.cfg.factors.colors[obj.color]), 1.0)   # what Workbench reads
            o.data = o.data.copy()
            o.data.materials.append(mat)
            o.color = index_color(k + 1)
            materials.append(mat)
        image = self.scratch.render(scene, "flat-full")
        set_index_pass(scene)
        index = self.scratch.render(scene, "flat-index")[..., 0]
        for o in list(scene.collection.objects):
            if o.type == "MESH":
                mesh = o.data
                bpy.data.objects.remove(o)
                bpy.data.meshes.remove(mesh)
        for m in materials:
            bpy.data.materials.remove(m)
        self._remove(scene)
        return image, index, poses


SPRITE_WAIT_S = 30.0   # how long a worker waits for a sprite another worker claimed before drawing it itself


def _load_sprite(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        with np.load(path) as f:
            return f["coverage"], f["mask"]
    except FileNotFoundError:
        return None


def _claim(path: Path) -> bool:
    """Create `path` if no one has: True for the one worker that did."""
    for _ in range(2):
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return True
        except FileExistsError:
            return False
        except FileNotFoundError:   # the job's first sprite: make the folder
            path.parent.mkdir(parents=True, exist_ok=True)
    return False
