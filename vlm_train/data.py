"""Question records -> chat examples, and the collator that turns them into model batches with labels
on the assistant's answer only.

The prompt text and the chat messages come from `blender_scenes/prompts.py`, as in evaluation and export.
torch is imported inside the collator only (the export command reads examples without it); transformers is
reached only through the processor object passed in.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from blender_scenes.errors import InputError
from blender_scenes.images import DEFAULT_MAX_IMAGE_PIXELS
from blender_scenes.prompts import chat_text, chat_turns, record_prompt
from blender_scenes.questions import read_questions, resolve_image

from .images import check_image

IGNORE_INDEX = -100  # the label value cross-entropy skips in transformers' causal-LM losses


@dataclass(frozen=True)
class ChatExample:
    """One training example: an image, the prompt a model sees, and the answer it should give."""
    id: str
    image: Path
    prompt: str
    answer: str


def load_examples(path: str | Path, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> list[ChatExample]:
    """Read and check a question file: not empty, every image on disk, within `max_image_pixels` and decoding.
    Raises InputError otherwise."""
    path = Path(path)
    records = read_questions(path)
    if not records:
        raise InputError(f"{path}: no question records (expected at least one JSON object per line)")
    examples = []
    for lineno, record in enumerate(records, 1):
        image = resolve_image(record, path)
        check_image(image, f"{path}: record {lineno} (id '{record.id}')", max_image_pixels)
        examples.append(ChatExample(record.id, image, record_prompt(record), record.answer))
    return examples


class QuestionDataset:
    """Chat examples with their images opened lazily (RGB); a map-style dataset for torch's DataLoader."""

    def __init__(self, examples: list[ChatExample]):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        ex = self.examples[i]
        with Image.open(ex.image) as im:
            image = im.convert("RGB")
        return {"image": image, "prompt": ex.prompt, "answer": ex.answer}


class ChatCollator:
    """Batches examples for training: chat template, images of any size, right padding, and labels that
    are the token ids of the assistant turn (answer + the template's end-of-turn) and -100 elsewhere
    (system, user prompt, image tokens, padding).

    The processor batches images itself (Qwen concatenates patches with a grid per image, LLaVA-OneVision
    pads with `image_sizes`, Idefics3 pads with a pixel mask), so a batch may mix image sizes."""

    def __init__(self, processor):
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.image_token_id = getattr(processor, "image_token_id", None)

    def texts(self, prompt: str, answer: str) -> tuple[str, str]:
        """The templated prompt (ending with the assistant header, exactly as generation sees it) and the full
        conversation: that prompt followed by the assistant turn as the template writes it, ended by the
        tokenizer's end-of-sequence token when the template writes none (the model must learn to stop)."""
        head = chat_text(self.processor, prompt)
        full = self.processor.apply_chat_template(chat_turns(prompt, answer), tokenize=False)
        if not full.startswith(head):
            # Molmo2's published template writes " <|im_start|>assistant" (a stray space) before an assistant
            # message but "<|im_start|>assistant" as the generation prompt: train on what generation sees
            at = full.rfind(answer)
            if not answer or at < 0:
                raise ValueError("the chat template renders the prompt differently with and without the answer, "
                                 "and the answer is not in the rendered conversation; cannot locate its tokens")
            full = head + full[at:]
        eos = self.tokenizer.eos_token
        if eos and eos not in full[len(head):]:
            # Molmo2's template ends an assistant message only when a user turn follows (its `<|im_end|>`)
            full += eos
        return head, full

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        heads, fulls = zip(*(self.texts(r["prompt"], r["answer"]) for r in rows))
        images = [[r["image"]] for r in rows]
        batch = self.processor(text=list(fulls), images=images, padding=True, padding_side="right",
                               return_tensors="pt")
        batch["labels"] = self.labels(batch, heads, fulls, images)
        return dict(batch)

    def labels(self, batch, heads, fulls, images):
        import torch

        ids, mask = batch["input_ids"], batch["attention_mask"]
        labels = torch.full_like(ids, IGNORE_INDEX)
        for i, (head, full) in enumerate(zip(heads, fulls)):
            length = int(mask[i].sum())  # right padding: the real tokens come first
            start = self._answer_start(ids[i, :length], head, full, images[i])
            labels[i, start:length] = ids[i, start:length]
        if self.image_token_id is not None:
            labels[ids == self.image_token_id] = IGNORE_INDEX
        return labels

    def _answer_start(self, ids, head: str, full: str, image_list) -> int:
        # Fast path: the assistant turn tokenized alone matches the tail of the sequence.
        tail = self.tokenizer(full[len(head):], add_special_tokens=False)["input_ids"]
        if 0 < len(tail) <= len(ids) and ids[len(ids) - len(tail):].tolist() == tail:
            return len(ids) - len(tail)
        # Else (a merge across the boundary, or an appended special token): count the prompt's tokens
        # with the image expanded exactly as in the batch.
        head_ids = self.processor(text=[head], images=[image_list], return_tensors="pt")["input_ids"][0]
        if ids[:len(head_ids)].tolist() != head_ids.tolist():
            raise ValueError("the tokenized prompt is not a prefix of the tokenized conversation")
        return len(head_ids)
