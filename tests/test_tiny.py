"""vlm_train/tiny.py and `scenes2real tiny-model`: tiny checkpoints load and generate like downloaded ones."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from scenes2real.cli import cli
from vlm_train.families import FAMILIES


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_tiny_model_loads_through_auto_classes_and_generates(model_type, tmp_path):
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    if model_type == "smolvlm":
        pytest.importorskip("num2words")  # SmolVLM's processor needs it
    out = tmp_path / "ckpt"
    result = CliRunner().invoke(cli, ["tiny-model", model_type, "--out", str(out)])
    assert result.exit_code == 0, result.output
    size = sum(p.stat().st_size for p in out.iterdir())
    assert size < 5e6, f"{model_type}: {size} bytes is not tiny"

    model = AutoModelForImageTextToText.from_pretrained(out)
    processor = AutoProcessor.from_pretrained(out)
    assert model.config.model_type == model_type
    processor.tokenizer.padding_side = "left"
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Where is the red star?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    images = [[Image.new("RGB", (96, 64), (255, 0, 0))], [Image.new("RGB", (200, 224), (0, 0, 255))]]
    inputs = processor(text=[text, text], images=images, return_tensors="pt", padding=True)
    assert inputs["input_ids"].shape[1] < 200  # small images make few image tokens
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert generated.shape[0] == 2
    assert inputs["input_ids"].shape[1] < generated.shape[1] <= inputs["input_ids"].shape[1] + 4


def test_tiny_model_weights_follow_the_seed(tmp_path):
    from safetensors.torch import load_file

    from vlm_train.tiny import write_tiny_model

    a = load_file(write_tiny_model("qwen2_5_vl", tmp_path / "a", seed=1) / "model.safetensors")
    b = load_file(write_tiny_model("qwen2_5_vl", tmp_path / "b", seed=1) / "model.safetensors")
    c = load_file(write_tiny_model("qwen2_5_vl", tmp_path / "c", seed=2) / "model.safetensors")
    assert a.keys() == b.keys() == c.keys()
    assert all((a[k] == b[k]).all() for k in a)
    assert any((a[k] != c[k]).any() for k in a)


def test_tiny_model_rejects_unknown_family(tmp_path):
    result = CliRunner().invoke(cli, ["tiny-model", "gpt2", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert not (tmp_path / "x").exists()
