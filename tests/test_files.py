"""blender_scenes/files.py: atomic writes leave no temporary file behind, whether they succeed or fail."""
from __future__ import annotations

import pytest

from blender_scenes.files import atomic_write_text, read_json
from blender_scenes.errors import InputError


def test_atomic_write_replaces_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two" and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_failed_atomic_write_removes_its_temporary_file(tmp_path):
    (tmp_path / "taken").mkdir()   # a folder where the file should go: the rename fails
    (tmp_path / "taken" / "x").write_text("")
    with pytest.raises(OSError):
        atomic_write_text(tmp_path / "taken", "data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_read_json_names_the_file_and_the_expectation(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match=r"bad\.json: not valid JSON .*expected a scene record"):
        read_json(bad, "a scene record")
    with pytest.raises(InputError, match=r"gone\.json: file not found \(expected a scene record\)"):
        read_json(tmp_path / "gone.json", "a scene record")
