"""Small Blender helpers shared by the flat and 3D renderers: a clean scene, colour conversion,
Workbench settings, rendering a pass to a file in a scratch folder and reading its pixels back."""
from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sys
import time
from pathlib import Path

import bpy
import cv2
import numpy as np

from ..files import pid_alive, scratch_base

WORKBENCH_AA = (5, 8, 11, 16, 32)   # the sample counts Workbench offers


def srgb_to_linear(rgb255) -> tuple[float, float, float]:
    c = np.asarray(rgb255, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return tuple(float(v) for v in lin)


def linear_to_srgb8(lin: np.ndarray) -> np.ndarray:
    """Float linear RGB -> 8-bit sRGB, rounded as Blender's 'Standard' view writes PNGs."""
    c = np.clip(lin, 0.0, 1.0)
    s = np.where(c <= 0.0031308, c * 12.92, 1.055 * np.power(c, 1 / 2.4) - 0.055)
    return np.floor(s * 255.0 + 0.5).astype(np.uint8)


def workbench_aa(samples: int) -> str:
    """Workbench's anti-aliasing for `samples`: 1 is one sample a pixel with FXAA (a post-process filter on the
    edges: 40% of the 8-sample time with shadows, 46-47 dB from it; bench/solid_looks.py), else the next sample
    count Workbench offers."""
    if samples <= 1:
        return "FXAA"
    return str(next((s for s in WORKBENCH_AA if s >= samples), WORKBENCH_AA[-1]))


def new_scene(name: str, width: int, height: int) -> bpy.types.Scene:
    scene = bpy.data.scenes.new(name)
    r = scene.render
    r.resolution_x, r.resolution_y, r.resolution_percentage = width, height, 100
    r.dither_intensity = 0.0           # dither noise would change the exact colours and the index pass
    r.image_settings.file_format = "PNG"
    r.image_settings.compression = 15  # the file is scratch: read back at once
    scene.view_settings.view_transform = "Standard"   # AgX (the default) washes colours out
    scene.view_settings.look = "None"
    scene.world = bpy.data.worlds.new(f"{name}-world")
    return scene


def reset_blender() -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)


def set_index_pass(scene: bpy.types.Scene) -> None:
    """Workbench, flat light, each object drawn in its own `object.color`, one sample per pixel centre,
    no colour transform: the written red channel is the object id."""
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.render_aa = "OFF"
    shading = scene.display.shading
    shading.light = "FLAT"
    shading.color_type = "OBJECT"
    shading.show_shadows = False
    shading.show_cavity = False
    shading.show_object_outline = False
    shading.show_specular_highlight = False
    shading.show_xray = False
    scene.view_settings.view_transform = "Raw"
    scene.world.color = (0.0, 0.0, 0.0)
    scene.render.image_settings.color_mode = "RGB"
    scene.render.image_settings.color_depth = "8"


def add_depth_output(scene: bpy.types.Scene, folder: Path) -> None:
    """Also write the scene's Z pass (Blender's depth: distance along the view axis, in metres) to
    folder/depth0001.exr at each render. A render result's passes cannot be read from Python, so a compositor
    File Output node writes it (32-bit float); the main output stays the plain Image, unchanged."""
    scene.view_layers[0].use_pass_z = True
    scene.use_nodes = True
    tree = scene.node_tree
    for node in list(tree.nodes):
        tree.nodes.remove(node)
    layers = tree.nodes.new("CompositorNodeRLayers")
    layers.scene = scene
    composite = tree.nodes.new("CompositorNodeComposite")
    tree.links.new(layers.outputs["Image"], composite.inputs["Image"])
    out = tree.nodes.new("CompositorNodeOutputFile")
    out.base_path = str(folder)
    out.format.file_format, out.format.color_depth, out.format.color_mode = "OPEN_EXR", "32", "RGB"
    out.file_slots[0].path = "depth"
    tree.links.new(layers.outputs["Depth"], out.inputs[0])


def read_depth(folder: Path, height: int, width: int) -> np.ndarray:
    """The depth the last render wrote with `add_depth_output`, as (height, width) float32, top row first."""
    path = folder / "depth0001.exr"
    image = bpy.data.images.load(str(path), check_existing=False)
    try:
        image.colorspace_settings.name = "Non-Color"   # raw metres, no colour transform
        buf = np.empty(height * width * image.channels, np.float32)
        image.pixels.foreach_get(buf)
    finally:
        bpy.data.images.remove(image)
    path.unlink()
    return np.ascontiguousarray(buf.reshape(height, width, -1)[::-1, :, 0])   # Blender's rows run bottom-up


def index_color(object_id: int) -> tuple[float, float, float, float]:
    return (object_id / 255.0, 0.0, 0.0, 1.0)


@contextlib.contextmanager
def quiet(log_path: Path):
    """Send Blender's C-level output during a render ('Fra:1 ...', 'Saved: ...', and the harmless EGL
    warnings of headless Workbench) to a log file instead of the user's terminal."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(log, 1)
    os.dup2(log, 2)
    try:
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (log, *saved):
            os.close(fd)


def remove_stale_scratch(base: Path) -> None:
    """Scratch folders of dead processes (a killed worker cannot clean up after itself)."""
    for d in base.glob("scenes2real-*"):
        pid = d.name.removeprefix("scenes2real-").split("-")[0]   # scenes2real-PID or scenes2real-PID-sprites
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)


class Scratch:
    """Renders a scene to a PNG in a private scratch folder and reads the pixels back. The folder is
    removed at exit, and those of dead processes when the next one starts."""

    def __init__(self, folder: str | Path | None = None):
        base = Path(folder) if folder else scratch_base()
        remove_stale_scratch(base)
        self.dir = base / f"scenes2real-{os.getpid()}"
        self.dir.mkdir(parents=True, exist_ok=True)
        atexit.register(shutil.rmtree, self.dir, ignore_errors=True)
        self.render_seconds = 0.0   # time inside Blender's render call (the rest is our overhead)

    def render(self, scene: bpy.types.Scene, name: str = "pass") -> np.ndarray:
        path = self.dir / f"{name}.png"
        scene.render.filepath = str(path)
        t0 = time.perf_counter()
        log = self.dir / "blender.log"
        try:
            with quiet(log):
                bpy.ops.render.render(write_still=True, scene=scene.name)
        except RuntimeError as err:
            raise RuntimeError(f"Blender failed to render {scene.name}: {err}; its output:\n"
                               f"{log.read_text(errors='replace')[-2000:]}") from None
        self.render_seconds += time.perf_counter() - t0
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise RuntimeError(f"Blender wrote no image to {path}")
        if img.ndim == 3 and img.shape[2] == 4:   # OpenCV reads BGR(A)
            return np.ascontiguousarray(img[..., [2, 1, 0, 3]])
        # RGB as a view of OpenCV's BGR buffer: flipping it back (to encode a PNG) gives the contiguous buffer
        return img[..., ::-1] if img.ndim == 3 else img
