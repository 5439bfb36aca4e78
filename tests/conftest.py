"""Shared fixtures: tiny model checkpoints (tests/tiny_models.py)."""
from tests.tiny_models import tiny_checkpoint  # noqa: F401
