"""The README's experiment block, run as written: every command of the code block under "The whole experiment in
commands", through the real CLI, on the demo design, a tiny Qwen2.5-VL checkpoint and the demo dataset's COCO file.

A fixed table says, for each command of the block, which words are replaced and what is added; a command the table
does not know, or a replacement whose words are no longer in the command, fails the test, so the block cannot drift
from what runs."""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from scenes2real.cli import cli

pytestmark = pytest.mark.bpy

README = Path(__file__).resolve().parents[1] / "README.md"
HEADING = "## The whole experiment in commands"
MODEL = "Qwen/Qwen2.5-VL-3B-Instruct"

# command (its first words) -> (whole-word replacements, words added at the end). `{coco}`, `{images}` and
# `{tiny}` are filled in by the test. The data and run folders keep their names (relative to a temporary folder).
TABLE: dict[str, tuple[dict[str, str], list[str]]] = {
    "plan": ({"civet": "demo"}, []),
    "render": ({"civet": "demo"}, []),               # --preset civet -> demo; --workers 2 kept
    "audit": ({}, []),
    "questions coco": ({"instances_val2017.json": "{coco}", "val2017": "{images}"}, []),
    "train": ({MODEL: "{tiny}"}, ["--epochs", "1", "--batch-size", "32"]),   # 4 steps over the demo train split
    "evaluate": ({MODEL: "{tiny}"}, ["--max-new-tokens", "6"]),
    "compare": ({}, []),
    "view": ({}, []),
}


def experiment_commands(text: str) -> list[str]:
    """The commands of the first ```bash block after the heading: continuation lines joined, comments dropped."""
    after = text.split(HEADING + "\n", 1)[1]
    block = re.search(r"```bash\n(.*?)```", after, re.S).group(1)
    joined = re.sub(r"\\\n\s*", "", block)
    return [line for line in (ln.split("#", 1)[0].strip() for ln in joined.splitlines()) if line]


def key_of(words: list[str]) -> str:
    return " ".join(words[1:3]) if words[1] == "questions" else words[1]


def substituted(command: str, values: dict[str, str]) -> list[str]:
    words = shlex.split(command)
    assert words[0] == "scenes2real", f"not a scenes2real command: {command}"
    key = key_of(words)
    assert key in TABLE, f"README experiment command not covered by tests/test_readme.py's TABLE: {command}"
    replace, extra = TABLE[key]
    missing = [old for old in replace if old not in words]
    assert not missing, f"the table replaces {missing} but the README's command has no such word: {command}"
    return [replace.get(w, w).format(**values) for w in words[1:]] + extra


def test_readme_experiment_block_runs(demo_dataset, tiny_checkpoint, tmp_path, monkeypatch):
    commands = experiment_commands(README.read_text())
    assert [key_of(shlex.split(c)) for c in commands] == \
        ["plan", "render", "audit", "questions coco", "train", "evaluate", "evaluate", "compare", "view"]
    values = {"coco": str(demo_dataset / "annotations" / "test.json"), "images": str(demo_dataset),
              "tiny": str(tiny_checkpoint("qwen2_5_vl"))}
    monkeypatch.chdir(tmp_path)
    for command in commands:
        args = substituted(command, values)
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 0, f"{command}\n-> scenes2real {shlex.join(args)}\n{res.output}"
    comparison = json.loads((tmp_path / "runs" / "compare" / "comparison.json").read_text())
    assert len(comparison["mcnemar"]) == 1
    assert (tmp_path / "runs" / "view-civet" / "index.html").is_file()

