"""vlm_train/train.py `answer_logits_only`: the trainer projects only the answer positions onto the vocabulary,
and the loss and every gradient are those of the whole logits (tiny checkpoints; a batch mixing image sizes, so
the answers start at different columns)."""
from __future__ import annotations

import pytest

from tests.question_sets import AREAS, write_question_set
from vlm_train.data import IGNORE_INDEX, ChatCollator, QuestionDataset, load_examples
from vlm_train.train import answer_logits_only


@pytest.mark.parametrize("family", ["qwen2_5_vl", "idefics3"])
def test_the_loss_and_gradients_are_those_of_the_whole_logits(tmp_path, tiny_checkpoint, family):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vlm_train.lora import apply_lora, resolve_targets

    checkpoint = tiny_checkpoint(family)
    processor = AutoProcessor.from_pretrained(checkpoint)
    examples = load_examples(write_question_set(tmp_path, "train", [AREAS[0], AREAS[4], AREAS[8]]))
    batch = ChatCollator(processor)(list(QuestionDataset(examples)))
    kept = answer_logits_only(batch)
    length = batch["labels"].shape[1]
    assert 1 < kept["logits_to_keep"] < length
    assert (kept["labels"][:, 0] == IGNORE_INDEX).all()   # never a target: the loss shifts labels by one
    assert (kept["labels"] != IGNORE_INDEX).sum() == (batch["labels"] != IGNORE_INDEX).sum()

    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(checkpoint)
    model = apply_lora(model, resolve_targets(model), 4, 8, 0.0)
    results = []
    for inputs in (batch, kept):
        model.zero_grad()
        output = model(**inputs)
        output.loss.backward()
        results.append((output.loss.detach(), output.logits.shape[1],
                        [p.grad.clone() for p in model.parameters() if p.requires_grad]))
    (full_loss, full_positions, full_grads), (loss, positions, grads) = results
    assert full_positions == length and positions == kept["logits_to_keep"]
    assert torch.allclose(loss, full_loss, rtol=1e-6, atol=0)
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in zip(grads, full_grads))


def test_a_batch_without_labels_is_left_alone():
    assert answer_logits_only({"input_ids": [1]}) == {"input_ids": [1]}
