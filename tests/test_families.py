"""vlm_train/families.py: the per-family table; its LoRA targets hit the attention projections they name."""
from __future__ import annotations

import re
from pathlib import Path

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


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_tiny_checkpoint_carries_the_published_template_and_its_tokens(model_type, tiny_checkpoint):
    """The template a tiny checkpoint ships is the family's published file, byte for byte, and every marker it
    renders (<|im_start|>, <image>, <end_of_utterance>, ...) is one special token of the tiny tokenizer."""
    from transformers import AutoProcessor

    from blender_scenes.prompts import chat_turns

    if model_type == "smolvlm":
        pytest.importorskip("num2words")
    family = FAMILIES[model_type]
    source = Path(__file__).parents[1] / "vlm_train" / "templates" / f"{family.template}.jinja"
    assert family.chat_template == source.read_text(encoding="utf-8")
    processor = AutoProcessor.from_pretrained(tiny_checkpoint(model_type))
    assert processor.chat_template == family.chat_template
    text = processor.apply_chat_template(chat_turns("Where is the red star?", "top left"), tokenize=False)
    markers = set(re.findall(r"<\|?[A-Za-z_]+\|?>", text))
    assert markers, text
    added = set(processor.tokenizer.get_added_vocab())
    for marker in markers:
        assert marker in added, f"{model_type}: {marker} rendered by the template is not a special token"
        assert len(processor.tokenizer(marker, add_special_tokens=False)["input_ids"]) == 1
