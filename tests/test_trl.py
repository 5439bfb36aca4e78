"""TRL's SFT with `assistant_only_loss=True` on our tiny Qwen2.5-VL checkpoint: TRL recognises the published
chat template by identity, swaps in its `{% generation %}` variant, and masks exactly what our own collator
trains on (the answer, `<|im_end|>` and its newline). Rows come from our TRL export."""
from __future__ import annotations

import pytest

from tests.question_sets import write_question_set
from vlm_train.data import IGNORE_INDEX, ChatCollator, QuestionDataset, load_examples
from vlm_train.export import trl_row

pytest.importorskip("trl")

ANSWERS = ["top left", "center", "bottom right"]


def _rows(tmp_path) -> list[dict]:
    from PIL import Image

    rows = [trl_row(ex) for ex in load_examples(write_question_set(tmp_path, "train", ANSWERS))]
    for row in rows:
        row["images"] = [Image.open(path).convert("RGB") for path in row["images"]]
    return rows


def _trainer(tmp_path, checkpoint, processor, rows):
    from datasets import Dataset
    from transformers import AutoModelForImageTextToText
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(output_dir=str(tmp_path / "trl"), assistant_only_loss=True, per_device_train_batch_size=3,
                     max_steps=1, max_length=None, report_to="none", use_cpu=True, disable_tqdm=True)
    model = AutoModelForImageTextToText.from_pretrained(checkpoint)
    return SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=processor)


def test_trl_assistant_only_loss_masks_exactly_the_answer_turn(tmp_path, tiny_checkpoint):
    import torch
    from transformers import AutoProcessor

    checkpoint = tiny_checkpoint("qwen2_5_vl")
    processor = AutoProcessor.from_pretrained(checkpoint)
    rows = _rows(tmp_path)
    trainer = _trainer(tmp_path, checkpoint, processor, rows)
    assert "{% generation" in trainer.chat_template.replace("{%-", "{%")  # TRL's training variant, swapped in
    batch = trainer.data_collator([dict(r) for r in rows])
    for labels, answer in zip(batch["labels"], ANSWERS):
        kept = labels[labels != IGNORE_INDEX]
        assert processor.tokenizer.decode(kept) == f"{answer}<|im_end|>\n"
    # token for token the same batch and labels as our own collator
    ours = ChatCollator(processor)(list(QuestionDataset(load_examples(tmp_path / "questions" / "train.jsonl"))))
    assert torch.equal(batch["input_ids"], ours["input_ids"]) and torch.equal(batch["labels"], ours["labels"])
    loss = trainer.train().training_loss
    assert torch.isfinite(torch.tensor(loss))


def test_trl_refuses_a_template_that_is_not_the_published_one(tmp_path, tiny_checkpoint):
    """What the user hit with the shortened template: TRL patches only templates it knows byte for byte."""
    from transformers import AutoProcessor

    checkpoint = tiny_checkpoint("qwen2_5_vl")
    processor = AutoProcessor.from_pretrained(checkpoint)
    processor.chat_template = processor.chat_template + " "
    with pytest.raises(ValueError, match="not training-compatible"):
        _trainer(tmp_path, checkpoint, processor, _rows(tmp_path))
