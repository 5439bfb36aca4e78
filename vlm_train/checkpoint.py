"""What the trainer and the evaluation runner share about loading a model: the check that `--model` names a
checkpoint (before any weights load), the device, the dtype to load it in, and the library versions a run
records.

evaluation imports this module; vlm_train never imports evaluation (the one direction between the two).
torch and transformers are imported inside the functions: they are heavy, and importing this stays cheap.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from blender_scenes.errors import InputError

def check_model(model: str) -> str:
    """The checkpoint's `model_type`. A local folder needs config.json; anything else must be a Hugging Face id
    transformers resolves (downloaded or in the cache). Only the config is read here, never the weights."""
    path = Path(model)
    if model.startswith(("/", "./", "../", "~")) and not path.exists():
        raise InputError(f"--model {model}: folder not found (expected a checkpoint folder or a Hugging Face id)")
    if path.is_dir() and not (path / "config.json").is_file():
        raise InputError(f"--model {model}: folder has no config.json (expected a transformers checkpoint)")
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model).model_type
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"--model {model}: cannot load a model config (expected a checkpoint folder with "
                         f"config.json, or a Hugging Face model id that is reachable or in the cache): "
                         f"{first[:160]}") from None


def pick_device(device: str) -> str:
    """`cuda` or `cpu` for --device auto | cpu | cuda; cuda without a CUDA device is an InputError."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device here (expected auto or cpu)")
    return device


def resolve_dtype(name: str, device: str) -> tuple[str, Any]:
    """(`bf16` | `fp32`, the torch dtype) for --dtype auto | bf16 | fp32 on `device`: auto is bf16 on a CUDA
    device that supports it, else fp32."""
    import torch

    if name == "auto":
        name = "bf16" if device == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return name, {"bf16": torch.bfloat16, "fp32": torch.float32}[name]


def library_versions() -> dict[str, str]:
    """The versions of the libraries that load and adapt the model, as a run's settings file records them."""
    import peft
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}
