"""Question files -> training files for other tools: LLaMA-Factory (sharegpt-style json with `<image>`
placeholders, plus its `dataset_info.json` entry) and TRL (a messages jsonl with an `images` list).

Prompts and messages come from `blender_scenes/prompts.py`, so a model trained with those tools sees the
same conversation as ours (LLaMA-Factory's string contents are the same turns, the image as `<image>`).
Image paths are written absolute, so the files work from any folder. No torch.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from blender_scenes.errors import InputError
from blender_scenes.files import atomic_write_json, atomic_write_text, read_json
from blender_scenes.prompts import chat_turns
from blender_scenes.questions import dataset_root

from .data import ChatExample, load_examples

Format = Literal["llamafactory", "trl"]
FORMATS = ("llamafactory", "trl")


def _sharegpt_turn(turn: dict) -> dict:
    """A chat turn with its content parts joined into one string, an image part as `<image>`."""
    text = "".join("<image>" if part["type"] == "image" else part["text"] for part in turn["content"])
    return {"role": turn["role"], "content": text}


def llamafactory_row(ex: ChatExample) -> dict:
    return {"messages": [_sharegpt_turn(turn) for turn in chat_turns(ex.prompt, ex.answer)],
            "images": [str(ex.image.resolve())]}


def trl_row(ex: ChatExample) -> dict:
    return {"id": ex.id, "messages": chat_turns(ex.prompt, ex.answer), "images": [str(ex.image.resolve())]}


def dataset_name(questions: Path) -> str:
    """`train` for `.../questions/train.jsonl`; the dataset folder's name is prefixed to tell datasets apart."""
    return f"{dataset_root(questions).name}_{questions.stem}"


def check_names(questions: list[Path], out: Path, name_of=None) -> None:
    """Two question files whose exports would share a name (`name_of(path)`, default `dataset_name`: the same file
    twice, or `val.jsonl` of two dataset folders with one name) are refused: the second would overwrite the first.
    Names that differ only in case collide too, on the file systems that ignore it."""
    seen: dict[str, Path] = {}
    for path in questions:
        name = (name_of or dataset_name)(path)
        first = seen.get(name.casefold())
        if first is not None:
            raise InputError(f"{first} and {path}: both export as {name!r} into {out} (the dataset folder's name and "
                             "the file's stem); expected one file per name: rename a dataset folder or export "
                             "them into separate --out folders")
        seen[name.casefold()] = path


def export(questions: list[str | Path], fmt: Format, out: str | Path) -> list[Path]:
    """Write one file per question file into `out` (and, for LLaMA-Factory, `dataset_info.json` with an entry
    per file, merged into an existing one). All inputs are checked before anything is written; each file is
    written whole under a temporary name, then renamed."""
    out = Path(out)
    check_names([Path(q) for q in questions], out)
    loaded = [(Path(q), load_examples(q)) for q in questions]
    written = []
    if fmt == "trl":
        for path, examples in loaded:
            target = out / f"{dataset_name(path)}.jsonl"
            atomic_write_text(target, "".join(json.dumps(trl_row(e), ensure_ascii=False) + "\n" for e in examples))
            written.append(target)
        return written
    info_path = out / "dataset_info.json"
    info = read_json(info_path, "LLaMA-Factory's dataset_info.json") if info_path.is_file() else {}
    if not isinstance(info, dict):
        raise InputError(f"{info_path}: expected a JSON object of datasets (LLaMA-Factory's dataset_info.json), "
                         f"got a {type(info).__name__}")
    for path, examples in loaded:
        name = dataset_name(path)
        target = out / f"{name}.json"
        atomic_write_json(target, [llamafactory_row(e) for e in examples], indent=1)
        info[name] = {"file_name": target.name, "formatting": "sharegpt",
                      "columns": {"messages": "messages", "images": "images"},
                      "tags": {"role_tag": "role", "content_tag": "content",
                               "user_tag": "user", "assistant_tag": "assistant"}}
        written.append(target)
    atomic_write_json(info_path, info, indent=2)
    return written + [info_path]
