"""The asset library: which shapes and objects a design can name, what questions call them, and where
their meshes come from. A library is a folder with a `manifest.toml`; the user's folder (`--assets DIR`,
config key `assets`, `$SCENES2REAL_ASSETS`) is searched before the one that ships as package data in
`shipped/`. No bpy here: importing and normalising meshes is `render/meshes.py`.

    [assets.mug]
    display = "mug"                      # the noun of questions and the COCO category name
    file = "pybullet/mug/mug.obj"        # or: builtin = "cube" (a generator of render/shapes.py)
    up = "Z"                             # the file's axis that points up
    colourable = true                    # false: keeps its own textures, colour is a fixed attribute
    licence = "Zlib"
    origin = "pybullet 3.2.7 wheel: pybullet_data/objects/mug.obj"
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from ..errors import InputError
from ..messages import explain, one_line

FLAT_SHAPES = ("square", "circle", "triangle", "star", "plus", "diamond", "hexagon", "heart")
SOLID_SHAPES = ("cube", "sphere", "cylinder", "cone", "torus", "pyramid", "capsule")
FORMATS = (".blend", ".glb", ".gltf", ".obj", ".fbx", ".ply", ".stl")
UP_AXES = ("Z", "Y", "X", "-Z", "-Y", "-X")
# the usual convention of each format when a manifest names no up axis
DEFAULT_UP = {".blend": "Z", ".glb": "Y", ".gltf": "Y", ".obj": "Y", ".fbx": "Y", ".ply": "Z", ".stl": "Z"}
MANIFEST = "manifest.toml"
# package data: found the same way in a checkout, an editable install and a wheel
SHIPPED_DIR = Path(str(resources.files("blender_scenes.assets") / "shipped"))
ASSETS_ENV = "SCENES2REAL_ASSETS"


def asset_folder(option: str | Path | None, own: str | None = None) -> str | None:
    """The user asset folder in force, absolute: `--assets` first, then the design's own `assets` key (already
    resolved against its file), then `$SCENES2REAL_ASSETS`; None when nothing names one."""
    folder = option or own or os.environ.get(ASSETS_ENV) or None
    return str(Path(folder).resolve()) if folder else None
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]*")   # fullmatch: an asset name is also its folder in a library


class AssetEntry(BaseModel):
    """One asset of a manifest (its name is the table key)."""
    model_config = ConfigDict(extra="forbid", frozen=True)

    display: str | None = None
    builtin: str | None = None
    file: str | None = None
    object: str | None = None          # .blend: an object or collection name (default: every mesh object)
    up: Literal["Z", "Y", "X", "-Z", "-Y", "-X"] | None = None
    kind: Literal["3d", "flat"] | None = None   # flat: a 2D outline in the XY plane, for flat designs
    colourable: bool = True
    licence: str = "unknown"
    origin: str = ""
    notes: str = ""

    @field_validator("file")
    @classmethod
    def _format(cls, v):
        if v is not None and Path(v).suffix.lower() not in FORMATS:
            raise ValueError(f"unsupported format {Path(v).suffix or '(none)'!r} of {v!r}; expected one of "
                             f"{', '.join(FORMATS)}")
        return v

    @field_validator("builtin")
    @classmethod
    def _generator(cls, v):
        if v is not None and v not in FLAT_SHAPES + SOLID_SHAPES:
            raise ValueError(f"unknown generator {v!r}; expected one of {', '.join(FLAT_SHAPES + SOLID_SHAPES)}")
        return v

    @model_validator(mode="after")
    def _source(self):
        if (self.builtin is None) == (self.file is None):
            raise ValueError("give exactly one source: builtin = GENERATOR or file = PATH")
        if self.object is not None and (self.file is None or Path(self.file).suffix.lower() != ".blend"):
            raise ValueError("'object' names an object or collection of a .blend file only")
        if self.builtin is not None and self.kind is not None and self.kind != _builtin_kind(self.builtin):
            raise ValueError(f"builtin {self.builtin!r} is {_builtin_kind(self.builtin)}, not {self.kind}")
        if self.builtin is not None and self.up is not None:
            raise ValueError("'up' is for files; built-in shapes are generated upright")
        if self.shape_kind == "flat" and not self.colourable:
            raise ValueError("flat assets take the design's colours (colourable = true)")
        return self

    @property
    def shape_kind(self) -> str:
        return _builtin_kind(self.builtin) if self.builtin else (self.kind or "3d")

    @property
    def up_axis(self) -> str:
        return self.up or DEFAULT_UP.get(Path(self.file or "x.blend").suffix.lower(), "Z")


def _builtin_kind(generator: str) -> str:
    return "flat" if generator in FLAT_SHAPES else "3d"


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    assets: dict[str, AssetEntry] = {}

    @field_validator("assets")
    @classmethod
    def _names(cls, v):
        for name in v:
            if not NAME.fullmatch(name):
                raise ValueError(f"asset name {name!r}: expected letters, digits, '_' or '-'")
        return v


@dataclass(frozen=True)
class Asset:
    name: str
    entry: AssetEntry
    manifest: Path            # the manifest that declares it (relative files resolve from its folder)

    @property
    def display(self) -> str:
        return self.entry.display or self.name.replace("_", " ")

    @property
    def path(self) -> Path | None:
        return (self.manifest.parent / self.entry.file) if self.entry.file else None

    @property
    def kind(self) -> str:
        return self.entry.shape_kind

    @property
    def source(self) -> str:
        return f"builtin:{self.entry.builtin}" if self.entry.builtin else str(self.entry.file)

    @property
    def where(self) -> str:
        """`manifest: asset 'name'`: the prefix of every message about this asset."""
        return f"{self.manifest}: asset {self.name!r}"


def read_manifest(path: Path) -> Manifest:
    """One manifest, validated; every problem is one line naming the file and the field."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise InputError(one_line(f"{path}: not valid TOML: {err}")) from None
    try:
        return Manifest.model_validate(data)
    except ValidationError as err:
        raise InputError(explain(err, Manifest, data).line(str(path))) from None


class Library:
    """The assets of the user's folder (first) and of the shipped library, by name."""

    def __init__(self, user_dir: str | Path | None = None, shipped_dir: str | Path = SHIPPED_DIR):
        self.user_dir = Path(user_dir) if user_dir else None
        self.assets: dict[str, Asset] = {}
        self.user: dict[str, Asset] = {}
        if self.user_dir is not None:
            if not self.user_dir.is_dir():
                raise InputError(f"assets: folder {self.user_dir} not found (expected a folder with {MANIFEST})")
            manifest = self.user_dir / MANIFEST   # a new user folder has none until `assets add`
            self.user = self._read(manifest) if manifest.is_file() else {}
        self.shipped = self._read(Path(shipped_dir) / MANIFEST)
        self.assets = {**self.shipped, **self.user}   # a user asset shadows a shipped one of the same name

    @staticmethod
    def _read(path: Path) -> dict[str, Asset]:
        if not path.is_file():
            raise InputError(f"{path}: file not found (expected the asset manifest, {MANIFEST})")
        return {name: Asset(name, entry, path) for name, entry in read_manifest(path).assets.items()}

    def names(self, kind: str | None = None) -> list[str]:
        return [n for n, a in self.assets.items() if kind is None or a.kind == kind]

    def __contains__(self, name: str) -> bool:
        return name in self.assets

    def get(self, name: str) -> Asset:
        if name not in self.assets:
            raise InputError(f"unknown asset {name!r}; known assets: {', '.join(self.names())}")
        return self.assets[name]


_cache: dict[tuple, Library] = {}


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def load_library(user_dir: str | Path | None = None) -> Library:
    """The library, re-read only when a manifest changed (display names are looked up per object)."""
    user = Path(user_dir).resolve() if user_dir else None
    key = (str(user), _mtime(user / MANIFEST) if user else 0, _mtime(SHIPPED_DIR / MANIFEST))
    if key not in _cache:
        _cache.clear()
        _cache[key] = Library(user)
    return _cache[key]


def display_name(name: str, user_dir: str | None = None) -> str:
    """What questions and COCO categories call an asset."""
    lib = load_library(user_dir)
    return lib.get(name).display if name in lib else name.replace("_", " ")


def check_design(cfg, source: str) -> None:
    """A design's shapes must be known assets of the right kind for its style, and an asset that keeps
    its own textures (colour and material fixed) must not be crossed with several colours or materials."""
    lib = load_library(cfg.assets)
    style_kind = "flat" if cfg.render.style == "flat" else "3d"
    for name in cfg.factors.shapes:
        if name not in lib:
            raise InputError(f"{source}: field 'factors.shapes': unknown asset {name!r}; known assets: "
                             f"{', '.join(lib.names())}")
        asset = lib.get(name)
        if asset.kind != style_kind:
            want = "flat (2D)" if style_kind == "flat" else "3D"
            raise InputError(f"{source}: field 'factors.shapes': {name!r} is a {'flat (2D)' if asset.kind == 'flat' else '3D'} "
                             f"asset but render.style = {cfg.render.style!r} needs {want} assets: "
                             f"{', '.join(lib.names(style_kind))}")
    parts = [(f"design.subsets[{i}]", sub.shapes, sub.colors, sub.materials)
             for i, sub in enumerate(cfg.design.subsets)] or [("factors", None, None, None)]
    for where, shapes, colors, materials in parts:
        colors = colors or list(cfg.factors.colors)
        materials = materials or list(cfg.factors.materials)
        for name in shapes or cfg.factors.shapes:
            if lib.get(name).entry.colourable:
                continue
            for factor, levels in (("colors", colors), ("materials", materials)):
                if len(levels) > 1:
                    raise InputError(
                        f"{source}: field '{where}.{factor}': asset {name!r} keeps its own textures, so its "
                        f"{factor[:-1]} is fixed and cannot be crossed with {len(levels)} levels "
                        f"({', '.join(levels)}); give it a design subset with one {factor[:-1]}")
