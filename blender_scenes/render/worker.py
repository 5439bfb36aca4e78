"""A render worker: one process that imports bpy once, builds the renderer for a design, and renders
chunks of scenes, writing each scene's image then its JSON (both atomically)."""
from __future__ import annotations

import resource
import time

import cv2

from ..annotate import scene_record
from ..config import DesignFile
from ..dataset import DatasetLayout
from ..files import atomic_write_bytes, atomic_write_json
from ..measure import measure, median_depth
from ..plan import SceneSpec
from .blend import Scratch, reset_blender
from .flat import FlatRenderer
from .meshes import mesh_source
from .solid import SolidRenderer

_state: dict = {}


def build_renderer(cfg: DesignFile, scratch_dir: str | None = None, threads: int | None = None,
                   sprites: str | None = None):
    """The renderer of a design. `sprites`: a folder the job's flat workers share their sprites in."""
    reset_blender()
    scratch = Scratch(scratch_dir)
    meshes = mesh_source(cfg.assets)   # shape names are asset names: shipped or the design's asset folder
    if cfg.render.style == "flat":
        return FlatRenderer(cfg, scratch, mesh_source=meshes, shared=sprites)
    renderer = SolidRenderer(cfg, scratch, mesh_source=meshes)
    if threads:   # several workers share the cores instead of each taking all of them
        renderer.beauty.render.threads_mode = "FIXED"
        renderer.beauty.render.threads = threads
    return renderer


def init(cfg_json: dict, root: str, threads: int | None = None, sprites: str | None = None) -> None:
    cfg = DesignFile.model_validate(cfg_json)
    renderer = build_renderer(cfg, threads=threads, sprites=sprites)
    _state.update(cfg=cfg, layout=DatasetLayout(root), renderer=renderer)


def render_scene(renderer, cfg: DesignFile, spec: SceneSpec, layout: DatasetLayout):
    """Render, measure and annotate one scene: (its record, its RGB pixels, its stored depth map or None),
    nothing written yet."""
    depth = None
    if cfg.render.style == "flat":
        if cfg.render.composite:
            image, index, poses = renderer.render(spec)
        else:
            image, index, poses = renderer.render_full(spec)
        placed, scene_info = spec, {"style": "flat", "engine": "workbench", "aa": renderer.aa,
                                    "composite": cfg.render.composite, "camera": {"type": "orthographic",
                                    "ortho_scale": max(cfg.image.width, cfg.image.height), "unit": "pixel"},
                                    "background_rgb": list(cfg.image.background)}
    else:
        image, index, poses, placed, depth = renderer.render(spec)
        scene_info = {"style": "3d", **renderer.scene_json()}
    measured = [measure(index, k + 1) for k in range(len(spec.objects))]
    depths = None if depth is None else [median_depth(depth, index == k + 1) for k in range(len(spec.objects))]
    record = scene_record(cfg, spec, placed, poses, measured, scene_info, layout.image_rel(spec.split, spec.id),
                          depths, layout.depth_rel(spec.split, spec.id) if depth is not None else None)
    return record, image, depth


def write_scene(layout: DatasetLayout, record: dict, image, depth=None) -> None:
    ok, png = cv2.imencode(".png", image[..., ::-1])   # from the pixel buffer: no date/time text chunks
    if not ok:
        raise RuntimeError(f"scene {record['id']}: PNG encoding failed")
    atomic_write_bytes(layout.image(record["split"], record["id"]), png.tobytes())   # image before JSON
    if depth is not None:   # the depth pass (16-bit PNG, measure.DEPTH_UNIT metres a step), also before JSON
        ok, png = cv2.imencode(".png", depth)
        if not ok:
            raise RuntimeError(f"scene {record['id']}: depth PNG encoding failed")
        atomic_write_bytes(layout.depth(record["split"], record["id"]), png.tobytes())
    atomic_write_json(layout.scene(record["split"], record["id"]), record)


def render_chunk(spec_dicts: list[dict]) -> dict:
    cfg, layout, renderer = _state["cfg"], _state["layout"], _state["renderer"]
    scratch = renderer.scratch
    t0, engine0 = time.perf_counter(), scratch.render_seconds
    for d in spec_dicts:
        write_scene(layout, *render_scene(renderer, cfg, SceneSpec.from_json(d), layout))
    return {"scenes": len(spec_dicts), "seconds": time.perf_counter() - t0,
            "engine_seconds": scratch.render_seconds - engine0,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
