"""vlm_train/lora.py: `auto` targets q/k/v of both towers for each family (family table and discovery agree),
explicit names, and the error for names that match nothing."""
from __future__ import annotations

import pytest

from blender_scenes.errors import InputError
from vlm_train.lora import apply_lora, discover_targets, matched_modules, resolve_targets

# (family, the part of a module name that marks the vision encoder, the language model)
TOWERS = {
    "qwen2_5_vl": ("visual.", "language_model."),
    "qwen2_vl": ("visual.", "language_model."),
    "llava_onevision": ("vision_tower.", "language_model."),
    "llava_onevision1_5": ("visual.", "language_model."),
    "idefics3": ("vision_model.", "text_model."),
}


def _load(path):
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(path)


@pytest.mark.parametrize("family", sorted(TOWERS))
def test_auto_targets_are_qkv_of_both_towers(tiny_checkpoint, family):
    model = _load(tiny_checkpoint(family))
    vision, language = TOWERS[family]
    chosen = matched_modules(model, resolve_targets(model, "auto"))
    layers = model.config.text_config.num_hidden_layers
    in_language = [n for n in chosen if language in n]
    in_vision = [n for n in chosen if vision in n]
    assert len(in_language) == 3 * layers
    assert in_vision and len(in_language) + len(in_vision) == len(chosen)
    assert {n.rsplit(".", 1)[-1] for n in in_language} == {"q_proj", "k_proj", "v_proj"}
    # Qwen's and LLaVA-OneVision-1.5's (RICE) vision blocks fuse q/k/v into one `qkv` linear layer: the study's target
    fused = family.startswith("qwen") or family == "llava_onevision1_5"
    expected_vision = {"qkv"} if fused else {"q_proj", "k_proj", "v_proj"}
    assert {n.rsplit(".", 1)[-1] for n in in_vision} == expected_vision
    # discovery (used for families outside the table) finds the same layers
    assert matched_modules(model, discover_targets(model)) == chosen


def test_lora_wraps_exactly_the_targets(tiny_checkpoint):
    model = _load(tiny_checkpoint("qwen2_5_vl"))
    targets = resolve_targets(model, "auto")
    chosen = matched_modules(model, targets)
    peft_model = apply_lora(model, targets, r=4, alpha=8, dropout=0.0)
    adapted = sorted({n.split(".lora_A")[0].removeprefix("base_model.model.")
                      for n, _ in peft_model.named_parameters() if ".lora_A" in n})
    assert adapted == sorted(chosen)
    assert all(p.requires_grad == ("lora_" in n) for n, p in peft_model.named_parameters())


def test_explicit_names_and_unknown_names(tiny_checkpoint):
    model = _load(tiny_checkpoint("qwen2_5_vl"))
    names = resolve_targets(model, "q_proj, v_proj")
    assert names == ["q_proj", "v_proj"]
    assert all(n.endswith(("q_proj", "v_proj")) for n in matched_modules(model, names))
    with pytest.raises(InputError, match="no_such_proj"):
        resolve_targets(model, "q_proj,no_such_proj")
