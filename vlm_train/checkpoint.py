"""What the trainer and the evaluation runner share about loading a model: the check that `--model` names a
checkpoint that runs none of its own code unless asked (before any weights load), the processor, the check that
every prompt fits the model's context, the device, the dtype to load it in, and the library versions a run
records. Every `from_pretrained` of ours passes `trust_remote_code` explicitly, so transformers never asks on
stdin whether to run a checkpoint's Python files.

evaluation imports this module; vlm_train never imports evaluation (the one direction between the two).
torch and transformers are imported inside the functions: they are heavy, and importing this stays cheap.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from blender_scenes.errors import InputError

OWN_CODE = ("{option} {source}: the checkpoint asks to run its own code ({where}); pass --trust-remote-code if "
            "you trust it")
# what a model's config may map to its own code (`auto_map`); the classes we load, and the config they need
_AUTO_CLASSES = ("AutoConfig", "AutoModelForImageTextToText")


def own_code_wanted(config: dict) -> bool:
    """Whether loading a checkpoint with this config.json content through our Auto classes needs the checkpoint's
    own Python files: an `auto_map` entry for a class transformers cannot resolve natively (a model type it does
    not know, or one without an image-text-to-text model). A config that names its own code but has a native
    equivalent loads natively with trust_remote_code=False, so it is not refused."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    auto_map = config.get("auto_map") or {}
    if not isinstance(auto_map, dict):   # an old list form names AutoConfig only
        auto_map = {"AutoConfig": auto_map}
    model_type = config.get("model_type")
    native = {"AutoConfig": model_type in CONFIG_MAPPING_NAMES,
              "AutoModelForImageTextToText": model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES}
    return any(name in auto_map and not native[name] for name in _AUTO_CLASSES)


def check_model(model: str, trust_remote_code: bool = False):
    """The checkpoint's config (a transformers `PretrainedConfig`). A local folder needs config.json; anything
    else must be a Hugging Face id transformers resolves (downloaded or in the cache). Only the config is read
    here, never the weights. A config that asks to run the checkpoint's own code is refused unless
    `trust_remote_code`: transformers would otherwise ask on stdin (and run it on a `y`)."""
    path = Path(model)
    if model.startswith(("/", "./", "../", "~")) and not path.exists():
        raise InputError(f"--model {model}: folder not found (expected a checkpoint folder or a Hugging Face id)")
    if path.is_dir() and not (path / "config.json").is_file():
        raise InputError(f"--model {model}: folder has no config.json (expected a transformers checkpoint)")
    from transformers import AutoConfig, PreTrainedConfig

    try:
        raw, _ = PreTrainedConfig.get_config_dict(model)
        if not trust_remote_code and own_code_wanted(raw):
            raise InputError(OWN_CODE.format(option="--model", source=model, where="config.json auto_map"))
        return AutoConfig.from_pretrained(model, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        if isinstance(err, InputError):
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"--model {model}: cannot load a model config (expected a checkpoint folder with "
                         f"config.json, or a Hugging Face model id that is reachable or in the cache): "
                         f"{first[:160]}") from None


def load_processor(source: str, trust_remote_code: bool = False, option: str = "--model"):
    """`AutoProcessor.from_pretrained(source)` with `trust_remote_code` given explicitly (so transformers never
    asks on stdin); processor files that need their own code without it are one InputError naming `option`."""
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(source, trust_remote_code=trust_remote_code)
    except ValueError as err:
        if "trust_remote_code" not in str(err):
            raise
        raise InputError(OWN_CODE.format(option=option, source=source, where="its processor files' auto_map")) \
            from None


# --- prompt length -----------------------------------------------------------------------------------------

_UNSET_MAX_LENGTH = 10**9   # transformers sets model_max_length to 1e30 when a tokenizer does not know it


def context_length(config, tokenizer) -> tuple[int, str] | None:
    """The longest sequence the model takes, and where that number comes from: the text config's
    `max_position_embeddings`, else the tokenizer's `model_max_length` when it is set (not transformers'
    placeholder); None when neither says."""
    limit = getattr(config.get_text_config(), "max_position_embeddings", None)
    if isinstance(limit, int) and limit > 0:
        return limit, "max_position_embeddings of its text config"
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < _UNSET_MAX_LENGTH:
        return limit, "model_max_length of its tokenizer"
    return None


def check_prompt_lengths(processor, config, texts: Iterable[tuple[str, str]], model: str, what: str = "prompt",
                         chunk: int = 256) -> None:
    """One InputError naming the first record whose templated text (`texts`: (where, text) pairs; `what` names
    it in the message) is longer in tokens than the model's context. Only the text is tokenized (the image
    placeholder counts as one token): cheap, and a lower bound of the real length, so what is refused would never
    fit."""
    tokenizer = getattr(processor, "tokenizer", processor)
    known = context_length(config, tokenizer)
    if known is None:
        return
    limit, source = known
    texts = list(texts)
    for start in range(0, len(texts), chunk):
        part = texts[start:start + chunk]
        ids = tokenizer([text for _, text in part], add_special_tokens=False, verbose=False)["input_ids"]
        for (where, _), row in zip(part, ids):
            if len(row) > limit:
                raise InputError(f"{where}: the {what} is {len(row)} tokens, longer than the model's context of "
                                 f"{limit} tokens ({source}, --model {model}); expected a shorter question")


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
