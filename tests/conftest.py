"""Shared fixtures: a rendered demo dataset (real bpy, small images), built once per test session; tiny
model checkpoints (tests/tiny_models.py)."""
from __future__ import annotations

import sys

import pytest

# bpy 4.5 and triton each bundle LLVM: once Blender has drawn in this process, torch's first `import triton`
# (torch._dynamo asks whether it is installed) can segfault. Tests render and run models in one process and
# never need triton (no torch.compile); `import triton` now raises ImportError, which torch expects.
sys.modules.setdefault("triton", None)

from blender_scenes.batch import run  # noqa: E402  (after the triton guard above)
from blender_scenes.config import load_preset  # noqa: E402
from tests.tiny_models import tiny_checkpoint  # noqa: E402, F401


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "ds"
    run(load_preset("demo"), out, workers=2, progress=False)
    return out


def pytest_sessionfinish(session, exitstatus):
    session.config._scenes2real_exitstatus = int(exitstatus)


def pytest_unconfigure(config):
    # bpy 4.5 as a module can deadlock in its static destructors at interpreter exit when torch's OpenMP
    # threads live in the same process (seen here: every test passed, then exit() never returned).
    # The summary is printed by now; leave without running the C++ exit handlers.
    import os
    import sys

    if "bpy" in sys.modules and hasattr(config, "_scenes2real_exitstatus"):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(config._scenes2real_exitstatus)
