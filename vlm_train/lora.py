"""LoRA targets: which linear layers of a VLM get adapters.

`auto` takes the family's patterns from `vlm_train.families` (q/k/v of the language model and of the vision
encoder, the study's recipe) and otherwise discovers the attention projections of both towers by name.
Imports torch; peft only inside `apply_lora` (heavy, and finding the targets does not need it).
"""
from __future__ import annotations

import contextlib
import re
import warnings

import torch

from blender_scenes.errors import InputError

from .families import FAMILIES

# Leaf names of query/key/value projections across transformers' language and vision attention modules:
# separate (q_proj, query, ...) or fused (qkv in Qwen's vision blocks, qkv_proj, Wqkv).
ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "query", "key", "value", "qkv", "qkv_proj", "Wqkv")


def linear_names(model: torch.nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)]


def discover_targets(model: torch.nn.Module) -> str:
    """A regex fully matching every attention q/k/v projection of the model (both towers), built from the
    module names with layer numbers generalised, e.g. `model\\.language_model\\.layers\\.\\d+\\.self_attn\\.q_proj`."""
    shapes = []
    for name in linear_names(model):
        if name.rsplit(".", 1)[-1] in ATTENTION_PROJECTIONS:
            shape = r"\.\d+\.".join(re.escape(part) for part in re.split(r"\.\d+\.", name))
            if shape not in shapes:
                shapes.append(shape)
    if not shapes:
        raise InputError(f"{type(model).__name__}: no attention projections found for LoRA "
                         f"(expected linear layers named {', '.join(ATTENTION_PROJECTIONS)}); "
                         "pass --target-modules NAMES")
    return "|".join(f"(?:{s})" for s in shapes)


def family_targets(model_type: str) -> str | None:
    """The family table's regex (language + vision q/k/v), or None for a family not in the table."""
    family = FAMILIES.get(model_type)
    return family.lora_target_regex() if family else None


def resolve_targets(model: torch.nn.Module, spec: str = "auto") -> str | list[str]:
    """peft `target_modules` for `--target-modules`: `auto` (family table, else discovery), or a
    comma-separated list of module names (peft matches them as name suffixes)."""
    if spec != "auto":
        names = [n.strip() for n in spec.split(",") if n.strip()]
        leaves = {n.rsplit(".", 1)[-1] for n in linear_names(model)}
        missing = [n for n in names if not any(full == n or full.endswith("." + n) for full in linear_names(model))]
        if not names or missing:
            raise InputError(f"--target-modules: {', '.join(missing) or repr(spec)} matches no linear layer "
                             f"(expected names such as {', '.join(sorted(leaves)[:12])})")
        return names
    pattern = family_targets(model.config.model_type) or discover_targets(model)
    if not matched_modules(model, pattern):
        raise InputError(f"{model.config.model_type}: the LoRA target pattern {pattern!r} matches no linear layer")
    return pattern


def matched_modules(model: torch.nn.Module, targets: str | list[str]) -> list[str]:
    """Names of the linear layers `targets` selects, with peft's matching rules (regex: full match;
    list: exact name or name suffix)."""
    if isinstance(targets, str):
        return [n for n in linear_names(model) if re.fullmatch(targets, n)]
    return [n for n in linear_names(model) if any(n == t or n.endswith("." + t) for t in targets)]


def apply_lora(model: torch.nn.Module, targets: str | list[str], r: int, alpha: int, dropout: float):
    """Wrap `model` in a peft LoRA model. peft changes `model` in place (adapters are injected into its
    modules), so the caller must not reuse `model` as the base afterwards."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, bias="none",
                        task_type="CAUSAL_LM")
    with quiet_peft():
        return get_peft_model(model, config)


@contextlib.contextmanager
def quiet_peft():
    """peft (0.21) asks transformers 5 for `is_gradient_checkpointing`, which it deprecates: a FutureWarning at
    every wrap or adapter load that is not the user's to fix."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield
