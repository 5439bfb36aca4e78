"""The built wheel, installed in a fresh virtual environment and run from a folder outside the checkout,
renders the presets (shipped assets are package data) and gives the same bytes as the checkout."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.bpy
ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list, cwd: Path, env: dict) -> str:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict]:
    """A venv holding only the wheel; its dependencies come from this test environment's site-packages
    (a path in a .pth file: the editable install's finder there is not activated)."""
    tmp = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # built from a copy: setuptools reuses a checkout's build/lib, which can hold modules since removed
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                                              ".pytest_cache", "out", "runs"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp / "dist", src], tmp, env)
    wheel = next((tmp / "dist").glob("scenes2real-*.whl"))
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp, env)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", wheel], tmp, env)
    return venv, env


def test_wheel_holds_the_shipped_assets_and_presets(installed, tmp_path):
    venv, env = installed
    where = _run([venv / "bin" / "python", "-c", "import blender_scenes, blender_scenes.assets as a; "
                  "print(blender_scenes.__file__); print(a.SHIPPED_DIR)"], tmp_path, env).split()
    assert all(str(venv) in w for w in where), where   # not the checkout
    shipped = Path(where[1])
    assert (shipped / "manifest.toml").is_file() and (shipped / "pybullet" / "mug" / "mug.obj").is_file()


def test_wheel_renders_presets_outside_the_checkout(installed, tmp_path, demo_dataset):
    venv, env = installed
    exe = venv / "bin" / "scenes2real"
    _run([exe, "render", "--preset", "demo", "--out", "demo", "--workers", "2", "--quiet"], tmp_path, env)
    _run([exe, "render", "--preset", "objects", "--limit", "1", "--split", "train", "--out", "objects", "--quiet"],
         tmp_path, env)
    assert len(list((tmp_path / "objects" / "images" / "train").glob("*.png"))) == 1
    assert "labels verified 1/1" in _run([exe, "audit", "objects"], tmp_path, env)
    mine = {p.relative_to(tmp_path / "demo"): p.read_bytes() for p in (tmp_path / "demo").rglob("*") if p.is_file()}
    checkout = {p.relative_to(demo_dataset): p.read_bytes() for p in demo_dataset.rglob("*")
                if p.is_file() and "audit" not in p.parts}
    assert mine.keys() == checkout.keys()
    assert [k for k in mine if mine[k] != checkout[k]] == []
