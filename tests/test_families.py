"""vlm_train/families.py: the per-family table; its LoRA targets hit the attention projections they name."""
from __future__ import annotations

import re

import pytest

from blender_scenes.errors import InputError
from vlm_train.families import FAMILIES, family_named, family_of


def _linear_names(model):
    import torch

    return [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)]


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_lora_targets_hit_language_and_vision_attention(model_type, tiny_checkpoint):
    from transformers import AutoModelForImageTextToText

    if model_type == "smolvlm":
        pytest.importorskip("num2words")
    model = AutoModelForImageTextToText.from_pretrained(tiny_checkpoint(model_type))
    family = family_of(model)
    assert family.model_type == model_type
    all_modules = [name for name, _ in model.named_modules()]
    linear = _linear_names(model)
    text_layers = model.config.text_config.num_hidden_layers
    for part, pattern in family.lora_targets.items():
        hits = [n for n in all_modules if re.fullmatch(pattern, n)]
        assert hits, f"{model_type} {part}: {pattern} matches nothing"
        assert set(hits) <= set(linear), f"{model_type} {part}: non-Linear modules matched"
        if part == "language":
            assert len(hits) == 3 * text_layers  # q, k, v of every layer
            assert all(n.rsplit(".", 1)[1] in {"q_proj", "k_proj", "v_proj"} for n in hits)
        else:
            assert all(n.rsplit(".", 1)[1] in {"q_proj", "k_proj", "v_proj", "qkv"} for n in hits)
    # the two parts are disjoint and the combined regex is what peft accepts
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=family.lora_target_regex()))
    adapted = {n.removeprefix("base_model.model.") for n, m in peft_model.named_modules() if hasattr(m, "lora_A")}
    expected = {n for n in all_modules if any(re.fullmatch(p, n) for p in family.lora_targets.values())}
    assert adapted == expected


def test_family_of_accepts_configs_and_dicts():
    from transformers import AutoConfig

    assert family_of(AutoConfig.for_model("qwen2_5_vl")).model_type == "qwen2_5_vl"
    assert family_of({"model_type": "llava_onevision"}).model_type == "llava_onevision"
    assert family_named("idefics3").lora_target_regex(("language",)).count("|") >= 2


def test_unknown_family_and_part_are_input_errors():
    with pytest.raises(InputError, match="gpt2.*expected one of"):
        family_named("gpt2")
    with pytest.raises(InputError, match="audio"):
        family_named("qwen2_5_vl").lora_target_regex(("audio",))
