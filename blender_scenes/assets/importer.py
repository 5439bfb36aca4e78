"""Building the shipped library's real objects from a package registry, reproducibly: the meshes of
pybullet's `pybullet_data` (Bullet3, zlib licence) are read from the pybullet wheel (downloaded with
`pip download`, or a wheel given) and written to `shipped/pybullet/`, with their manifest entries.
`scenes2real assets import-pybullet` runs it. No bpy: a URDF of several boxes (the table) is merged
into one OBJ with numpy."""
from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..files import atomic_write_bytes
from .library import MANIFEST, SHIPPED_DIR

PYBULLET_VERSION = "3.2.7"
LICENCE = "Zlib"
ORIGIN = f"pybullet {PYBULLET_VERSION} wheel (PyPI), pybullet_data/{{path}}; Bullet3 licence: zlib"
BEGIN, END = "# >>> pybullet (written by `scenes2real assets import-pybullet`; do not edit by hand)", "# <<< pybullet"


@dataclass(frozen=True)
class Source:
    name: str
    display: str
    path: str                     # in pybullet_data/: an .obj, .stl, or .urdf whose visuals are merged
    up: str
    colourable: bool = True
    extra: tuple[str, ...] = ()   # material and texture files a textured asset needs
    notes: str = ""
    licence: str = LICENCE


PYBULLET = (
    Source("rubber_duck", "rubber duck", "duck.obj", "Y", colourable=False, extra=("duck.mtl", "duckCM.png"),
           notes="upstream: the COLLADA sample duck (Sony Computer Entertainment), SCEA Shared Source License 1.0",
           licence="Zlib (pybullet); SCEA Shared Source License 1.0 (original model)"),
    Source("mug", "mug", "objects/mug.obj", "Z"),
    Source("teddy_bear", "teddy bear", "teddy2_VHACD_CHs.obj", "Y",
           notes="convex-hull (V-HACD) decomposition of a teddy bear: blocky by design"),
    Source("soccer_ball", "soccer ball", "soccerball.obj", "Z", colourable=False,
           extra=("soccerball.mtl", "colors16.png")),
    Source("tray", "tray", "tray/tray_textured4.obj", "Z"),
    Source("toy_brick", "toy brick", "lego/lego.obj", "Y"),
    Source("traffic_cone", "traffic cone", "racecar/meshes/cone.obj", "Z"),
    Source("shelf", "shelf", "kiva_shelf/meshes/pod_lowres.stl", "Y"),
    Source("domino", "domino", "domino/domino.obj", "Z", colourable=False, extra=("domino/domino.mtl", "domino/domino.jpg")),
    Source("table", "table", "table/table.urdf", "Z", notes="the URDF's five boxes (top and legs) merged into one OBJ"),
    Source("bunny", "bunny", "bunny.obj", "Y",
           notes="low-resolution Stanford bunny", licence="Zlib (pybullet); Stanford 3D Scanning Repository terms "
           "(original model: free for research and redistribution, credit Stanford; ask before commercial use)"),
)


def download_wheel(folder: Path) -> Path:
    """`pip download pybullet==VERSION --no-deps`: the wheel holds pybullet_data."""
    cmd = [sys.executable, "-m", "pip", "download", f"pybullet=={PYBULLET_VERSION}", "--no-deps", "-d", str(folder)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(folder.glob("pybullet-*.whl")) + sorted(folder.glob("pybullet-*.tar.gz"))
    if done.returncode or not wheels:
        raise InputError(f"pip download pybullet=={PYBULLET_VERSION} failed: "
                         f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}; pass --wheel FILE")
    return wheels[0]


class _Wheel:
    def __init__(self, path: Path):
        if not zipfile.is_zipfile(path):
            raise InputError(f"--wheel: {path} is not a wheel (zip) of pybullet")
        self.zip = zipfile.ZipFile(path)
        self.prefix = next((n.split("pybullet_data/")[0] + "pybullet_data/" for n in self.zip.namelist()
                            if "pybullet_data/" in n), None)
        if self.prefix is None:
            raise InputError(f"--wheel: {path} holds no pybullet_data/ folder")

    def read(self, rel: str) -> bytes:
        try:
            return self.zip.read(self.prefix + rel)
        except KeyError:
            raise InputError(f"pybullet wheel: pybullet_data/{rel} not found (another pybullet version?)") from None


def _strip_materials(obj_text: str) -> str:
    """A colourable asset takes the design's colours: drop material references (some point at missing files)."""
    return "\n".join(ln for ln in obj_text.splitlines() if not ln.startswith(("mtllib", "usemtl"))) + "\n"


def _obj_geometry(text: str) -> tuple[np.ndarray, list[list[int]]]:
    verts, faces = [], []
    for ln in text.splitlines():
        parts = ln.split()
        if parts and parts[0] == "v":
            verts.append([float(v) for v in parts[1:4]])
        elif parts and parts[0] == "f":
            faces.append([int(p.split("/")[0]) for p in parts[1:]])
    return np.array(verts), faces


def _rpy_matrix(r: float, p: float, y: float) -> np.ndarray:
    cr, sr, cp, sp, cy, sy = math.cos(r), math.sin(r), math.cos(p), math.sin(p), math.cos(y), math.sin(y)
    return np.array([[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                     [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                     [-sp, cp * sr, cp * cr]])


def urdf_to_obj(wheel: _Wheel, rel: str) -> str:
    """The visual meshes of a one-link URDF (origin, rpy, scale applied), one OBJ object per visual."""
    base = rel.rsplit("/", 1)[0] + "/" if "/" in rel else ""
    root = ET.fromstring(wheel.read(rel))
    out, offset = [f"# merged from pybullet_data/{rel} by scenes2real assets import-pybullet"], 0
    for k, visual in enumerate(root.iter("visual")):
        mesh = visual.find("geometry/mesh")
        origin = visual.find("origin")
        xyz = np.array([float(v) for v in (origin.get("xyz", "0 0 0") if origin is not None else "0 0 0").split()])
        rpy = [float(v) for v in (origin.get("rpy", "0 0 0") if origin is not None else "0 0 0").split()]
        scale = np.array([float(v) for v in mesh.get("scale", "1 1 1").split()])
        verts, faces = _obj_geometry(wheel.read(base + mesh.get("filename")).decode())
        verts = (verts * scale) @ _rpy_matrix(*rpy).T + xyz
        out.append(f"o visual{k}")
        out += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in verts]
        out += ["f " + " ".join(str(i + offset) for i in f) for f in faces]
        offset += len(verts)
    return "\n".join(out) + "\n"


def toml_entry(name: str, fields: dict) -> str:
    """One `[assets.NAME]` table (strings written JSON-escaped, which TOML basic strings accept)."""
    lines = [f"[assets.{name}]"]
    for key, value in fields.items():
        if value is None or value == "":
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else json.dumps(value, ensure_ascii=False)
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def import_pybullet(dest: Path = SHIPPED_DIR, wheel: Path | None = None) -> list[str]:
    """Write the pybullet assets under dest/pybullet/ and their block of dest/manifest.toml."""
    with tempfile.TemporaryDirectory() as tmp:
        whl = _Wheel(Path(wheel) if wheel else download_wheel(Path(tmp)))
        entries = []
        for s in PYBULLET:
            folder = dest / "pybullet" / s.name
            folder.mkdir(parents=True, exist_ok=True)
            stem = Path(s.path).stem
            if s.path.endswith(".urdf"):
                target, data = folder / f"{stem}.obj", urdf_to_obj(whl, s.path).encode()
            elif s.path.endswith(".obj"):
                text = whl.read(s.path).decode()
                target, data = folder / Path(s.path).name, (text if not s.colourable else _strip_materials(text)).encode()
            else:
                target, data = folder / Path(s.path).name.lower(), whl.read(s.path)
            atomic_write_bytes(target, data)
            for extra in s.extra:
                atomic_write_bytes(folder / Path(extra).name, whl.read(extra))
            entries.append(toml_entry(s.name, {
                "display": s.display, "file": str(target.relative_to(dest)), "up": s.up, "colourable": s.colourable,
                "licence": s.licence, "origin": ORIGIN.format(path=s.path), "notes": s.notes}))
        licence = next((n for n in whl.zip.namelist() if n.endswith(".dist-info/LICENSE.txt")), None)
        if licence:
            atomic_write_bytes(dest / "pybullet" / "LICENSE-pybullet.txt", whl.zip.read(licence))
    manifest = dest / MANIFEST
    text = manifest.read_text(encoding="utf-8") if manifest.is_file() else ""
    block = BEGIN + "\n\n" + "\n".join(entries) + END + "\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block
    atomic_write_bytes(manifest, text.encode())
    return [s.name for s in PYBULLET]
