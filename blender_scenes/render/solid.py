"""3D scenes: objects on a ground plane under a perspective camera, rendered with Workbench (studio
light, shadows), Cycles or EEVEE, plus a Workbench index pass for the masks.

Positions are controlled in image space: an object is put where the ray through its cell's centre meets
the ground, then moved until its projected box is centred on that pixel. The rendered pixels decide: an
object whose visible box falls in another area, that touches the image border, that is hidden beyond
`render.min_visible`, or that intersects another object is re-placed, deterministically, in another cell
of the same area; a scene that cannot be placed is an error, never a wrong label. A relation scene (issue 13)
promises its relation instead of areas: its objects may move anywhere on the grid, the target and anchor only to
cells that keep the planned relation, until the boxes (and the depth pass) give the planned answer."""
from __future__ import annotations

import math
import random
from dataclasses import replace

import bpy
import numpy as np
from mathutils import Matrix, Vector

from ..camera import Camera
from ..config import DesignFile
from ..errors import PlacementError
from ..labels import cells_of_area
from ..measure import depth_png, measure, measured_relation, median_depth
from ..plan import SceneSpec
from ..relations import keeps_relation, pair_cells
from .blend import (
    Scratch,
    add_depth_output,
    index_color,
    new_scene,
    read_depth,
    set_index_pass,
    srgb_to_linear,
    workbench_aa,
)
from .meshes import COLOURABLE
from .shapes import builtin_mesh, mesh_vertices

MAX_ATTEMPTS = 24
GROUND_RGB = (160, 160, 160)
BACKGROUND_RGB = (160, 160, 160)
WORKBENCH_EXPOSURE = 1.4   # Workbench's studio light leaves surfaces at about half their colour


class SolidRenderer:
    def __init__(self, cfg: DesignFile, scratch: Scratch, mesh_source=builtin_mesh):
        self.cfg = cfg
        self.W, self.H = cfg.image.width, cfg.image.height
        self.scratch = scratch
        self.mesh_source = mesh_source
        c = cfg.camera
        self.camera = Camera.looking_at_origin(c.elevation, c.azimuth, c.distance, c.lens, self.W, self.H)
        self.meshes: dict[str, tuple[bpy.types.Mesh, np.ndarray]] = {}
        self.materials: dict[tuple[str, str | None], bpy.types.Material] = {}
        self.pool: list[bpy.types.Object] = []
        self.pairs: dict[tuple[str, str], list] = {}   # relation -> the planner's pairs of cells for it
        self._build()

    # -- one-time scene set-up --------------------------------------------------------------------
    def _build(self) -> None:
        cfg = self.cfg
        self.beauty = new_scene("beauty", self.W, self.H)
        self.index = new_scene("index", self.W, self.H)
        set_index_pass(self.index)
        self.depth = "depth" in cfg.questions.tasks   # only depth designs pay for the depth pass
        if self.depth:
            add_depth_output(self.index, self.scratch.dir)
        cam = bpy.data.cameras.new("camera")
        cam.lens, cam.sensor_width, cam.sensor_fit = cfg.camera.lens, 36.0, "AUTO"
        cam.clip_start, cam.clip_end = 0.1, 1000.0
        cam_obj = bpy.data.objects.new("camera", cam)
        cam_obj.matrix_world = _matrix(self.camera.matrix_world)
        self.objects = bpy.data.collections.new("objects")
        for scene in (self.beauty, self.index):
            scene.collection.objects.link(cam_obj)
            scene.camera = cam_obj
            scene.collection.children.link(self.objects)
        ground = bpy.data.objects.new("ground", self._plane())
        ground_mat = self._material_from("ground", GROUND_RGB, metallic=0.0, roughness=0.9)
        ground.data.materials.append(ground_mat)
        self.beauty.collection.objects.link(ground)
        self._engine()

    @staticmethod
    def _plane() -> bpy.types.Mesh:
        mesh = bpy.data.meshes.new("ground")
        s = 200.0
        mesh.from_pydata([(-s, -s, 0), (s, -s, 0), (s, s, 0), (-s, s, 0)], [], [(0, 1, 2, 3)])
        return mesh

    def _engine(self) -> None:
        cfg, scene = self.cfg, self.beauty
        scene.world.color = srgb_to_linear(BACKGROUND_RGB)
        scene.render.image_settings.color_mode = "RGB"
        if cfg.render.engine == "workbench":
            scene.render.engine = "BLENDER_WORKBENCH"
            scene.display.render_aa = workbench_aa(cfg.render.samples)
            sh = scene.display.shading
            sh.light, sh.studio_light, sh.color_type = "STUDIO", "Default", "MATERIAL"
            if any(not self.mesh(s)[0].get(COLOURABLE, True) for s in cfg.factors.shapes):
                sh.color_type = "TEXTURE"   # shows textured assets' images; plain materials keep their colour
            sh.show_shadows, sh.shadow_intensity = True, 0.6
            sh.show_specular_highlight = True
            scene.display.light_direction = (-0.45, 0.35, 0.82)   # in view space: from the front left
            scene.display.shadow_shift = 0.05
            scene.view_settings.exposure = WORKBENCH_EXPOSURE
            return
        self._lights()
        world = scene.world
        world.use_nodes = True
        bg = world.node_tree.nodes["Background"]
        bg.inputs["Color"].default_value = (*srgb_to_linear(BACKGROUND_RGB), 1.0)
        bg.inputs["Strength"].default_value = 0.35
        if cfg.render.engine == "cycles":
            scene.render.engine = "CYCLES"
            cy = scene.cycles
            cy.samples = cfg.render.samples
            cy.use_adaptive_sampling = False
            cy.use_denoising = False
            cy.seed = 0
            cy.max_bounces, cy.diffuse_bounces, cy.glossy_bounces = 4, 2, 4
            cy.caustics_reflective = cy.caustics_refractive = False
            cy.device = "GPU" if cfg.render.device == "gpu" else "CPU"
            if cfg.render.device == "gpu":
                _enable_gpu()
            scene.render.use_persistent_data = True   # keep the compiled kernels and shaders between scenes
        else:
            scene.render.engine = "BLENDER_EEVEE_NEXT"
            scene.eevee.taa_render_samples = cfg.render.samples

    def _lights(self) -> None:
        """CLEVR's three lights: a key, a fill and a back light (area lights, soft shadows)."""
        for name, loc, energy, size in (("key", (6.0, -3.0, 8.0), 900.0, 2.0),
                                        ("fill", (-6.0, -2.0, 5.0), 250.0, 3.0),
                                        ("back", (-1.0, 7.0, 6.0), 400.0, 2.0)):
            light = bpy.data.lights.new(name, "AREA")
            light.energy, light.size = energy, size
            obj = bpy.data.objects.new(name, light)
            obj.location = loc
            direction = -np.array(loc) / np.linalg.norm(loc)
            obj.rotation_euler = _look_rotation(direction)
            self.beauty.collection.objects.link(obj)

    # -- assets -----------------------------------------------------------------------------------
    def mesh(self, shape: str) -> tuple[bpy.types.Mesh, np.ndarray]:
        if shape not in self.meshes:
            m = self.mesh_source(shape)
            self.meshes[shape] = (m, mesh_vertices(m))
        return self.meshes[shape]

    def _material_from(self, name, rgb, metallic: float, roughness: float) -> bpy.types.Material:
        mat = bpy.data.materials.new(name)
        lin = srgb_to_linear(rgb)
        mat.diffuse_color = (*lin, 1.0)   # Workbench reads diffuse_color, metallic and roughness
        mat.metallic, mat.roughness = metallic, roughness
        mat.use_nodes = True
        bsdf = mat.node_tree.nodes["Principled BSDF"]
        bsdf.inputs["Base Color"].default_value = (*lin, 1.0)
        bsdf.inputs["Metallic"].default_value = metallic
        bsdf.inputs["Roughness"].default_value = roughness
        return mat

    def material(self, color: str, material: str | None) -> bpy.types.Material:
        key = (color, material)
        if key not in self.materials:
            params = self.cfg.factors.materials.get(material) if material else None
            self.materials[key] = self._material_from(
                f"{color}-{material}", self.cfg.factors.colors[color],
                metallic=params.metallic if params else 0.0, roughness=params.roughness if params else 0.6)
        return self.materials[key]

    def _object(self, k: int) -> bpy.types.Object:
        while len(self.pool) <= k:   # objects are reused scene after scene: no datablock churn
            o = bpy.data.objects.new(f"object{len(self.pool)}", self.mesh(self.cfg.factors.shapes[0])[0])
            self.objects.objects.link(o)
            self.pool.append(o)
        return self.pool[k]

    # -- placement --------------------------------------------------------------------------------
    def _cell_centre(self, cell) -> tuple[float, float]:
        r, c = cell
        return (c + 0.5) * self.W / self.cfg.grid.cols, (r + 0.5) * self.H / self.cfg.grid.rows

    def _place(self, obj, cell, yaw: float) -> tuple[dict, np.ndarray, float]:
        """Pose whose projected box is centred on the cell's centre; also its projected vertices and
        its footprint radius (for the intersection test)."""
        size = self.cfg.factors.sizes[obj.size]
        _, verts = self.mesh(obj.shape)
        c, s = math.cos(yaw), math.sin(yaw)
        rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
        local = verts * size @ rot.T
        want = np.array(self._cell_centre(cell))
        aim = want.copy()
        for _ in range(6):
            base = self.camera.cast(*aim)
            px = self.camera.project(local + base)
            centre = (px.min(0) + px.max(0)) / 2
            err = want - centre
            if np.abs(err).max() < 0.05:
                break
            aim += err
        pose = {"location": [float(base[0]), float(base[1]), 0.0], "rotation_euler": [0.0, 0.0, yaw],
                "scale": [size, size, size]}
        radius = float(np.linalg.norm(local[:, :2], axis=1).max())
        return pose, px, radius

    def render(self, spec: SceneSpec) -> tuple[np.ndarray, np.ndarray, list[dict], SceneSpec, np.ndarray | None]:
        """(8-bit RGB image, object-index map with id k+1 for objects[k], poses, the spec as placed, the stored
        depth map (measure.depth_png) of depth designs, else None)."""
        rng = random.Random(f"{self.cfg.seed}:place:{spec.index}")
        yaws = [rng.uniform(0, 2 * math.pi) for _ in spec.objects]
        cells = [o.cell for o in spec.objects]
        tried = [{c} for c in cells]
        for attempt in range(MAX_ATTEMPTS):
            failing, occluded_by, poses, index, depth = self._try(spec, cells, yaws)
            if not failing:
                placed = replace(spec, objects=tuple(replace(o, cell=c) for o, c in zip(spec.objects, cells)))
                image = self.scratch.render(self.beauty, "beauty")
                return image, index, [dict(p, attempts=attempt + 1) for p in poses], placed, depth
            movers = set()
            for k in failing:   # an occluded target stays; what hides it moves
                movers |= occluded_by.get(k, set()) if k == 0 and occluded_by.get(k) else {k}
            for k in sorted(movers):
                if spec.relation and k < 2:
                    self._move_pair(spec, k, cells, tried, rng)
                else:
                    cells[k] = self._next_cell(spec.objects[k], cells, tried[k], rng,
                                               anywhere=spec.relation is not None)
        raise PlacementError(f"scene {spec.id}: no placement after {MAX_ATTEMPTS} attempts "
                             f"(objects too large for their cells? lower factors.sizes or widen the camera)")

    def _move_pair(self, spec: SceneSpec, k: int, cells: list, tried: list[set], rng: random.Random) -> None:
        """Move the target (k = 0) or anchor (k = 1) of a relation scene to an untried cell of the grid that keeps
        the planned relation with the other where it is (the planner's rule), so a re-placement never trades one
        wrong answer for another; when none is left, the pair moves together to another planned pair of cells."""
        task, answer, g = spec.relation["task"], spec.relation["answer"], self.cfg.grid
        other = cells[1 - k]

        def keeps(c):
            pair = (c, other) if k == 0 else (other, c)
            return keeps_relation(task, answer, *pair, g.rows, g.cols)
        options = [(r, c) for r in range(g.rows) for c in range(g.cols)
                   if (r, c) not in tried[k] and (r, c) not in cells and keeps((r, c))]
        if options:
            cells[k] = rng.choice(options)
            tried[k].add(cells[k])
            return
        if (task, answer) not in self.pairs:
            self.pairs[task, answer] = pair_cells(task, answer, g.rows, g.cols)
        taken = set(cells[2:])
        pairs = [p for p in self.pairs[task, answer] if not taken & set(p) and p != (cells[0], cells[1])]
        cells[0], cells[1] = rng.choice(pairs)
        tried[0], tried[1] = {cells[0]}, {cells[1]}

    def _next_cell(self, obj, cells, tried: set, rng: random.Random, anywhere: bool = False):
        """Another cell for an object: of its area (area designs promise areas), or of the whole grid for a
        relation scene's distractor (relation scenes promise their relation, not areas)."""
        g = self.cfg.grid
        area = [(r, c) for r in range(g.rows) for c in range(g.cols)] if anywhere else \
            cells_of_area(obj.area, g.rows, g.cols)
        options = [c for c in area if c not in tried and c not in cells]
        if not options:   # every cell of the area tried: start over with new orientations' luck
            tried.clear()
            options = [c for c in area if c not in cells]
        cell = rng.choice(sorted(options))
        tried.add(cell)
        return cell

    def _try(self, spec, cells, yaws):
        cfg = self.cfg
        poses, hulls, radii = [], [], []
        for k, (obj, cell, yaw) in enumerate(zip(spec.objects, cells, yaws)):
            pose, px, radius = self._place(obj, cell, yaw)
            self._dress(k, obj, pose)
            poses.append(pose)
            hulls.append(px)
            radii.append(radius)
        for o in self.pool[len(spec.objects):]:
            o.hide_render = True
        failing: set[int] = set()
        occluded_by: dict[int, set[int]] = {}
        margin = cfg.render.margin_px
        for k, px in enumerate(hulls):   # the whole object (hidden parts too) must be inside the frame
            if px[:, 0].min() < margin or px[:, 1].min() < margin or px[:, 0].max() > self.W - margin \
                    or px[:, 1].max() > self.H - margin:
                failing.add(k)
        for a in range(len(poses)):      # solid objects must not intersect
            for b in range(a + 1, len(poses)):
                d = math.dist(poses[a]["location"][:2], poses[b]["location"][:2])
                if d < radii[a] + radii[b] + 0.05:
                    failing.add(b if b != 0 else a)
        index = self.scratch.render(self.index, "index")[..., 0]
        depth = depth_png(read_depth(self.scratch.dir, self.H, self.W), index) if self.depth else None
        n = len(spec.objects)
        # only an object whose projected box meets another's can be hidden: draw just those alone
        overlapping = [k for k in range(n) if any(j != k and _overlap(hulls[j], hulls[k]) for j in range(n))]
        full = self._isolated_pixels(overlapping, n)
        for k, obj in enumerate(spec.objects):
            m = measure(index, k + 1)
            visible = m.pixels / full[k] if full.get(k) else (1.0 if m.pixels else 0.0)
            poses[k].update(bbox=m.bbox, visible_pixels=m.pixels, visible_share=round(visible, 4))
            if (m.area != obj.area and not spec.relation) or visible < cfg.render.min_visible:
                failing.add(k)
                if visible < cfg.render.min_visible:
                    occluded_by[k] = {j for j in range(len(spec.objects)) if j != k and _overlap(hulls[j], hulls[k])}
        if spec.relation and self._relation(spec, poses, index, depth) != spec.relation["answer"]:
            failing.add(1)   # the pixels do not give the planned answer: the anchor moves
        return failing, occluded_by, poses, index, depth

    def _relation(self, spec: SceneSpec, poses: list[dict], index: np.ndarray, depth: np.ndarray | None):
        depths = [median_depth(depth, index == k + 1) if depth is not None else None for k in (0, 1)]
        return measured_relation(spec.relation["task"], poses[0]["bbox"], poses[1]["bbox"], *depths,
                                 margin=self.cfg.depth_margin)

    def _dress(self, k: int, obj, pose: dict) -> None:
        """Pool object k becomes `obj`: its mesh, colour and material, pose and index colour."""
        o = self._object(k)
        o.data = mesh = self.mesh(obj.shape)[0]
        if mesh.get(COLOURABLE, True):
            if len(mesh.materials) != 1 or mesh.materials[0] is not None:
                # only once per mesh: resizing a shared mesh's slots resets the object-linked
                # material of every other object using it (two cubes in a scene: one lost its colour)
                mesh.materials.clear()
                mesh.materials.append(None)
            o.material_slots[0].link = "OBJECT"   # meshes are shared: the colour lives on the object
            o.material_slots[0].material = self.material(obj.color, obj.material)
        else:   # a textured asset keeps its own materials: colour and material are fixed attributes
            for slot in o.material_slots:
                slot.link = "DATA"
        o.location, o.rotation_euler, o.scale = pose["location"], pose["rotation_euler"], pose["scale"]
        o.color = index_color(k + 1)
        o.hide_render = False

    def _isolated_pixels(self, which: list[int], n: int) -> dict[int, int]:
        """Pixel counts of these objects each drawn alone: the denominators of their visible shares."""
        out = {}
        for k in which:
            for j in range(n):
                self.pool[j].hide_render = j != k
            out[k] = int((self.scratch.render(self.index, "alone")[..., 0] == k + 1).sum())
        for j in range(n):
            self.pool[j].hide_render = False
        return out

    def scene_json(self) -> dict:
        cfg = self.cfg
        d = {"camera": self.camera.to_json(), "engine": cfg.render.engine, "samples": cfg.render.samples,
             "device": cfg.render.device, "ground_rgb": list(GROUND_RGB), "background_rgb": list(BACKGROUND_RGB)}
        if cfg.render.engine == "workbench":
            d["lighting"] = {"kind": "studio", "light_direction": list(self.beauty.display.light_direction),
                             "shadows": True}
        else:
            d["lights"] = [{"name": o.name, "type": o.data.type, "location": list(o.location),
                            "energy": o.data.energy, "size": o.data.size}
                           for o in self.beauty.collection.objects if o.type == "LIGHT"]
        return d


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    (ax0, ay0), (ax1, ay1) = a.min(0), a.max(0)
    (bx0, by0), (bx1, by1) = b.min(0), b.max(0)
    return ax0 < bx1 and bx0 < ax1 and ay0 < by1 and by0 < ay1


def _matrix(m: np.ndarray):
    return Matrix([list(map(float, row)) for row in m])


def _look_rotation(direction: np.ndarray):
    return Vector(direction.tolist()).to_track_quat("-Z", "Y").to_euler()


def _enable_gpu() -> None:
    prefs = bpy.context.preferences.addons["cycles"].preferences
    for kind in ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL"):
        try:
            prefs.compute_device_type = kind
        except TypeError:
            continue
        prefs.get_devices()
        if any(d.type == kind for d in prefs.devices):
            for d in prefs.devices:
                d.use = d.type == kind
            return
    raise RuntimeError("render.device = 'gpu' but Blender finds no GPU (OPTIX, CUDA, HIP, oneAPI, Metal)")
