"""Tiny random-weight checkpoints of real VLM architectures, built offline from the family table.

`write_tiny_model(family, out)` writes a folder that loads with `AutoModelForImageTextToText` and
`AutoProcessor` like a downloaded checkpoint: config + safetensors weights (seeded), a byte-level BPE
tokenizer trained here on a few hundred words plus the family's special tokens, the family's image (and
video) processor set to small images, and its chat template. Used by tests and benches; never for results.
The folder is written under a temporary name and renamed whole; a folder that holds anything is refused unless
replacing it is asked for (a trained adapter's tokenizer, processor and template were overwritten otherwise).
torch and transformers are imported inside the functions that use them (heavy).
"""
from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from blender_scenes.errors import InputError
from blender_scenes.files import staged_folder
from blender_scenes.labels import LABELS

from .families import Family, family_named

# Words a tiny tokenizer learns whole: the prompt template, the questions and the labels, so prompts tokenize
# into tens of tokens rather than hundreds of bytes.
_CORPUS_WORDS = (
    "Answer using as few words as possible. Where is the {}? Choose from [{}]. "
    "You are a helpful assistant. system user assistant User Assistant"
)
_DESCRIPTIONS = ("red star", "green circle", "blue square", "yellow triangle", "purple cube", "gray sphere",
                 "small cylinder", "large cone", "person", "dog", "car", "cat", "chair", "bottle", "cup")


def _corpus() -> list[str]:
    lines = []
    for task, labels in LABELS.items():
        for d in _DESCRIPTIONS:
            lines.append(_CORPUS_WORDS.format(d, ", ".join(labels)) + " " + " ".join(labels))
    return lines


def build_tokenizer(family: Family, vocab_size: int = 512):
    """A byte-level BPE tokenizer (like Qwen's and Llama 3's) with the family's special tokens at ids 0.."""
    from transformers import PreTrainedTokenizerFast

    specials = list(family.special_tokens)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer)
    kwargs = {"eos_token": family.eos_token, "pad_token": family.pad_token}
    if family.bos_token:
        kwargs["bos_token"] = family.bos_token
    if family.named_tokens:
        kwargs["extra_special_tokens"] = dict(family.named_tokens)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs)


def build_processor(family: Family, tokenizer):
    import transformers

    recipe = family.tiny
    name, kwargs = recipe.image_processor
    parts = {"image_processor": getattr(transformers, name)(**kwargs), "tokenizer": tokenizer}
    if recipe.video_processor:
        name, kwargs = recipe.video_processor
        parts["video_processor"] = getattr(transformers, name)(**kwargs)
    processor_class = getattr(transformers, recipe.processor_class)
    return processor_class(**parts, chat_template=family.chat_template, **recipe.processor_kwargs)


def build_tiny_model(family: Family, tokenizer, seed: int = 0):
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    vocab = len(tokenizer)
    config = AutoConfig.for_model(family.model_type,
                                  **family.tiny.config(tokenizer.convert_tokens_to_ids, vocab))
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def write_tiny_model(model_type: str, out: str | Path, seed: int = 0, replace: bool = False) -> Path:
    """Write a tiny checkpoint of `model_type` (a key of FAMILIES) to `out`; returns the folder. A non-empty
    `out` is refused (InputError) unless `replace`, which swaps the whole folder for the new checkpoint (a
    model "retrained in place", in tests)."""
    family = family_named(model_type)
    out = Path(out)
    if not replace and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"--out {out}: folder is not empty (expected a new folder for the tiny checkpoint)")
    tokenizer = build_tokenizer(family)
    processor = build_processor(family, tokenizer)
    # the processor may add tokens (Idefics3 adds its image tokens); size the embeddings after it
    model = build_tiny_model(family, processor.tokenizer, seed=seed)
    with staged_folder(out) as staging:   # renamed whole: never a folder that looks complete and is not
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
    return out
