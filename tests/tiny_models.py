"""Tiny random-weight checkpoints for tests, written once per test session (see vlm_train/tiny.py).

Use the `tiny_checkpoint` fixture (registered in tests/conftest.py): `tiny_checkpoint("qwen2_5_vl")` returns
the folder of a checkpoint that loads through the Auto classes like a downloaded one. Treat it as read-only.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# the hub is unreachable here; fail fast instead of retrying downloads
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    built: dict[str, Path] = {}

    def get(model_type: str) -> Path:
        if model_type not in built:
            from vlm_train.tiny import write_tiny_model

            built[model_type] = write_tiny_model(model_type, tmp_path_factory.mktemp(f"tiny-{model_type}"))
        return built[model_type]

    return get
