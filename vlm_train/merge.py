"""Merging a LoRA adapter into its base model: one full checkpoint (weights, processor and chat template
together) that serves anywhere transformers loads, without peft. torch, transformers and peft are imported
inside `merge_adapter`; every input is checked before any weights load."""
from __future__ import annotations

import shutil
from pathlib import Path

from blender_scenes.errors import InputError

from .checkpoint import check_model


def _check_inputs(model: str, adapter: str, out: Path) -> None:
    check_model(model)
    if not (Path(adapter) / "adapter_config.json").is_file():
        raise InputError(f"--adapter {adapter}: no adapter_config.json (expected a folder saved by peft)")
    if out.exists() and any(out.iterdir()):
        raise InputError(f"--out {out}: folder is not empty (expected a new folder for the merged checkpoint)")


def merge_adapter(model: str, adapter: str, out: str | Path) -> Path:
    """Fold `adapter` into `model`'s weights (peft `merge_and_unload`) in the checkpoint's own dtype and write
    the result to `out`; returns it. The processor (hence the chat template) is the one saved with the adapter
    when the trainer saved it there (what the adapter was trained with), else the base model's."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    out = Path(out)
    _check_inputs(model, adapter, out)
    base = AutoModelForImageTextToText.from_pretrained(model, dtype="auto")
    merged = PeftModel.from_pretrained(base, adapter).merge_and_unload()
    with_processor = (Path(adapter) / "tokenizer_config.json").is_file()
    processor = AutoProcessor.from_pretrained(adapter if with_processor else model)
    # written under a temporary name, then renamed: a killed merge never leaves a folder that looks complete
    staging = out.with_name(f".{out.name}.tmp")
    if staging.exists():
        shutil.rmtree(staging)
    merged.save_pretrained(staging)
    processor.save_pretrained(staging)
    if out.exists():
        out.rmdir()  # empty, checked above
    staging.rename(out)
    return out
