"""Shared fixtures: a rendered demo dataset (real bpy, small images), built once per test session; tiny
model checkpoints (tests/tiny_models.py)."""
from __future__ import annotations

import pytest

from blender_scenes.batch import run
from blender_scenes.config import load_preset
from tests.tiny_models import tiny_checkpoint  # noqa: F401


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "ds"
    run(load_preset("demo"), out, workers=2, progress=False)
    return out
