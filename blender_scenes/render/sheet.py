"""The contact sheet of an asset library: every asset rendered small in Workbench (3D assets from an
oblique camera, flat ones from above), labelled with its name, in one PNG."""
from __future__ import annotations

import math

import bpy
import cv2
import numpy as np
from mathutils import Vector

from ..assets import Library, load_library
from ..files import atomic_write_bytes
from .blend import Scratch, new_scene, reset_blender, srgb_to_linear
from .meshes import COLOURABLE, load_asset

TILE_RGB = (70, 120, 200)       # the colour a colourable asset is shown in
BACKGROUND_RGB = (236, 236, 236)


def _scene(tile: int, flat: bool) -> bpy.types.Scene:
    scene = new_scene("sheet-flat" if flat else "sheet-3d", tile, tile)
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.render_aa = "8"
    sh = scene.display.shading
    sh.light = "FLAT" if flat else "STUDIO"
    sh.color_type = "TEXTURE"   # textured assets show their images; others their material colour
    sh.show_specular_highlight = not flat
    scene.world.color = srgb_to_linear(BACKGROUND_RGB)
    scene.render.image_settings.color_mode = "RGB"
    cam = bpy.data.cameras.new(scene.name)
    cam_obj = bpy.data.objects.new(scene.name, cam)
    if flat:
        cam.type, cam.ortho_scale = "ORTHO", 1.25
        cam_obj.location = (0.0, 0.0, 5.0)
    else:
        cam.lens = 50.0
        elev, azim, dist = math.radians(28.0), math.radians(35.0), 3.1
        cam_obj.location = (dist * math.cos(elev) * math.sin(azim), -dist * math.cos(elev) * math.cos(azim),
                            0.42 + dist * math.sin(elev))
        cam_obj.rotation_euler = (Vector((0, 0, 0.42)) - cam_obj.location).to_track_quat("-Z", "Y").to_euler()
    scene.collection.objects.link(cam_obj)
    scene.camera = cam_obj
    return scene


def render_sheet(library: Library, names: list[str] | None = None, tile: int = 160, columns: int = 7) -> np.ndarray:
    """RGB image of the assets (all by default), one labelled tile each, in library order."""
    names = names or library.names()
    scratch = Scratch()
    scenes = {True: _scene(tile, True), False: _scene(tile, False)}
    colour = bpy.data.materials.new("sheet-colour")
    colour.diffuse_color = (*srgb_to_linear(TILE_RGB), 1.0)
    label_h = 22
    rows = math.ceil(len(names) / columns)
    sheet = np.full((rows * (tile + label_h), columns * tile, 3), 255, np.uint8)
    for i, name in enumerate(names):
        asset = library.get(name)
        mesh = load_asset(asset)
        flat = asset.kind == "flat"
        obj = bpy.data.objects.new(name, mesh)
        if mesh.get(COLOURABLE, True):
            mesh.materials.clear()
            mesh.materials.append(colour)
        obj.rotation_euler = (0.0, 0.0, 0.0 if flat else math.radians(-20.0))
        scene = scenes[flat]
        scene.collection.objects.link(obj)
        img = scratch.render(scene, "sheet")
        bpy.data.objects.remove(obj)
        r, c = divmod(i, columns)
        y0, x0 = r * (tile + label_h), c * tile
        sheet[y0:y0 + tile, x0:x0 + tile] = img[..., :3]
        text = name if len(name) <= 20 else name[:19] + "."
        (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        cv2.putText(sheet, text, (x0 + max(2, (tile - tw) // 2), y0 + tile + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (30, 30, 30), 1, cv2.LINE_AA)
    return sheet


def write_sheet(out: str, names: list[str] | None = None, assets_dir: str | None = None, tile: int = 160,
                columns: int = 7) -> tuple[int, int, int]:
    """Render the contact sheet of the library (or `names`) to the PNG `out`: (assets, width, height)."""
    library = load_library(assets_dir)
    for n in names or ():
        library.get(n)   # an unknown name fails before Blender starts
    reset_blender()
    image = render_sheet(library, names or None, tile=tile, columns=columns)
    ok, png = cv2.imencode(".png", image[..., ::-1])
    if not ok:
        raise RuntimeError(f"{out}: PNG encoding failed")
    atomic_write_bytes(out, png.tobytes())
    return len(names or library.names()), image.shape[1], image.shape[0]
