"""Merging a LoRA adapter into its base model: one full checkpoint (weights, processor and chat template
together) that serves anywhere transformers loads, without peft. torch, transformers and peft are imported
inside `merge_adapter`; every input is checked before any weights load, and no checkpoint runs its own code
unless the user trusts it."""
from __future__ import annotations

from pathlib import Path

from blender_scenes.errors import InputError
from blender_scenes.files import staged_folder

from .checkpoint import check_model, load_processor


def _check_inputs(model: str, adapter: str, out: Path, trust_remote_code: bool) -> None:
    check_model(model, trust_remote_code)
    if not (Path(adapter) / "adapter_config.json").is_file():
        raise InputError(f"--adapter {adapter}: no adapter_config.json (expected a folder saved by peft)")
    if out.exists() and any(out.iterdir()):
        raise InputError(f"--out {out}: folder is not empty (expected a new folder for the merged checkpoint)")


def merge_adapter(model: str, adapter: str, out: str | Path, trust_remote_code: bool = False) -> Path:
    """Fold `adapter` into `model`'s weights (peft `merge_and_unload`) in the checkpoint's own dtype and write
    the result to `out`; returns it. The processor (hence the chat template) is the one saved with the adapter
    when the trainer saved it there (what the adapter was trained with), else the base model's."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    from .lora import quiet_peft

    out = Path(out)
    _check_inputs(model, adapter, out, trust_remote_code)
    with_processor = (Path(adapter) / "tokenizer_config.json").is_file()
    processor = load_processor(adapter if with_processor else model, trust_remote_code,
                               "--adapter" if with_processor else "--model")
    base = AutoModelForImageTextToText.from_pretrained(model, dtype="auto", trust_remote_code=trust_remote_code)
    with quiet_peft():
        merged = PeftModel.from_pretrained(base, adapter, trust_remote_code=trust_remote_code).merge_and_unload()
    # written under a temporary name, then renamed whole: a killed merge never leaves a folder that looks complete
    with staged_folder(out) as staging:
        merged.save_pretrained(staging)
        processor.save_pretrained(staging)
    return out
