"""The dry run of `train`: the first batch built exactly as training builds it, shown as text (as LLaMA-Factory
prints at start-up) and written to `OUT/example.json`, with the processor only, so a template or label-mask
mistake shows before hours of training. The processor is loaded by the caller (`train.py`); no model weights
load."""
from __future__ import annotations

from pathlib import Path

from blender_scenes.files import atomic_write_json

from .data import IGNORE_INDEX, ChatCollator, ChatExample, QuestionDataset


def decoded_example(processor, batch: dict, row: int = 0) -> dict[str, str]:
    """Row `row` of a collated batch: `text`, the whole sequence the model reads (image tokens expanded,
    padding dropped), and `labels`, the tokens the loss is on; both decoded with special tokens kept."""
    tokenizer = getattr(processor, "tokenizer", processor)
    ids, labels = batch["input_ids"][row], batch["labels"][row]
    real = ids[batch["attention_mask"][row].bool()]
    return {"text": tokenizer.decode(real, skip_special_tokens=False),
            "labels": tokenizer.decode(labels[labels != IGNORE_INDEX], skip_special_tokens=False)}


def dry_run(processor, examples: list[ChatExample], batch_size: int, out: Path) -> dict:
    """Collate the first batch of `examples` with the model's processor; write and return its first example."""
    first = examples[:batch_size]
    dataset = QuestionDataset(first)
    batch = ChatCollator(processor)([dataset[i] for i in range(len(first))])
    example = {"id": first[0].id, "image": str(first[0].image), "answer": first[0].answer,
               **decoded_example(processor, batch), "batch_shape": list(batch["input_ids"].shape)}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "example.json", example, indent=2)
    return example
