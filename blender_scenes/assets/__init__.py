"""The asset library as one subpackage: `library` (manifests, the library, design checks; no bpy), `manage`
(add and check user assets), `importer` (build the shipped objects from pybullet), and `shipped/` (the
shipped library, package data). The bpy loader that turns an asset into a mesh is `render/meshes.py`."""
from .library import (ASSETS_ENV, FLAT_SHAPES, FORMATS, MANIFEST, NAME, SHIPPED_DIR, SOLID_SHAPES, UP_AXES, Asset,
                      AssetEntry, Library, asset_folder, check_design, display_name, load_library, read_manifest)

__all__ = ["ASSETS_ENV", "FLAT_SHAPES", "FORMATS", "MANIFEST", "NAME", "SHIPPED_DIR", "SOLID_SHAPES", "UP_AXES",
           "Asset", "AssetEntry", "Library", "asset_folder", "check_design", "display_name", "load_library",
           "read_manifest"]
