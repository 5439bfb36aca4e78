"""vlm_train/merge.py and `scenes2real merge-adapter`: the merged checkpoint computes what the adapter on its
base computes (fp32 logits within 1e-5 of their scale), carries the processor and chat template, and `evaluate` gives the
same answers with either."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from scenes2real.cli import cli
from tests.question_sets import AREAS, write_question_set

FAMILY = "qwen2_5_vl"


@pytest.fixture(scope="module")
def adapter(tiny_checkpoint, tmp_path_factory):
    """A LoRA adapter on q/k/v of both towers with random (non-zero) weights, saved with the processor as the
    trainer saves `OUT/best`."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vlm_train.families import family_named

    base = tiny_checkpoint(FAMILY)
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(base)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=family_named(FAMILY).lora_target_regex(),
                        init_lora_weights=False)  # random B: the adapter changes the outputs
    folder = tmp_path_factory.mktemp("adapter")
    get_peft_model(model, config).save_pretrained(folder)
    AutoProcessor.from_pretrained(base).save_pretrained(folder)
    return folder


def _merge(model, adapter, out):
    return CliRunner().invoke(cli, ["merge-adapter", "--model", str(model), "--adapter", str(adapter),
                                    "--out", str(out)])


def test_merged_logits_equal_the_adapter_on_its_base(tiny_checkpoint, adapter, tmp_path):
    import torch
    from peft import PeftModel
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from blender_scenes.prompts import chat_text

    base = tiny_checkpoint(FAMILY)
    result = _merge(base, adapter, tmp_path / "merged")
    assert result.exit_code == 0, result.output
    merged_dir = tmp_path / "merged"
    assert {"config.json", "model.safetensors", "chat_template.jinja", "tokenizer.json"} <= {
        p.name for p in merged_dir.iterdir()}
    assert not (merged_dir / "adapter_config.json").exists()
    processor = AutoProcessor.from_pretrained(merged_dir)
    assert processor.chat_template == AutoProcessor.from_pretrained(adapter).chat_template

    text = chat_text(processor, "Where is the red star?")
    inputs = processor(text=[text], images=[[Image.new("RGB", (84, 56), (200, 30, 30))]], return_tensors="pt")
    plain = AutoModelForImageTextToText.from_pretrained(base, dtype=torch.float32).eval()
    with torch.no_grad():
        base_logits = plain(**inputs).logits
        adapted = PeftModel.from_pretrained(plain, adapter).eval()(**inputs).logits
        merged = AutoModelForImageTextToText.from_pretrained(merged_dir, dtype=torch.float32).eval()(**inputs).logits
    assert not torch.allclose(adapted, base_logits, atol=1e-2), "the adapter must change the logits"
    # fp32, tolerance 1e-5 relative to the largest logit (|logit| ~ 12 here, so ~1.2e-4 absolute; observed ~3e-5):
    # the folded weights W + BA are rounded to fp32 once, and the tiny model's wide random init amplifies that
    scale = max(1.0, adapted.abs().max().item())
    torch.testing.assert_close(merged, adapted, atol=1e-5 * scale, rtol=0)


def test_evaluate_answers_the_same_with_the_merged_model(tiny_checkpoint, adapter, tmp_path):
    questions = write_question_set(tmp_path / "data", "test", [AREAS[i] for i in range(6)])
    assert _merge(tiny_checkpoint(FAMILY), adapter, tmp_path / "merged").exit_code == 0

    def answers(*args):
        out = tmp_path / f"eval-{len(args)}"
        result = CliRunner().invoke(cli, ["evaluate", *map(str, args), "--questions", str(questions),
                                          "--out", str(out), "--batch-size", "3"])
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
        return [(r["id"], r["raw"]) for r in rows]

    with_adapter = answers("--model", tiny_checkpoint(FAMILY), "--adapter", adapter)
    assert answers("--model", tmp_path / "merged") == with_adapter


def test_bad_inputs_are_one_line_errors(tiny_checkpoint, adapter, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    cases = {"no adapter": (tiny_checkpoint(FAMILY), tmp_path, tmp_path / "m1", "adapter_config.json"),
             "no model": (tmp_path / "none", adapter, tmp_path / "m2", "--model"),
             "out not empty": (tiny_checkpoint(FAMILY), adapter, tmp_path / "full", "not empty")}
    for name, (model, adapter_dir, out, expected) in cases.items():
        result = _merge(model, adapter_dir, out)
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and expected in lines[0], (name, result.output)
