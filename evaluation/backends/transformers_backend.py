"""The `transformers` backend: the model in this process, greedy `generate` in left-padded batches.

Any family that transformers' `AutoModelForImageTextToText` and `AutoProcessor` load works: each prompt is
wrapped in the model's own chat template by the shared `chat_text` (`blender_scenes/prompts.py`, as in
training), image first. Under torchrun each process takes the GPU of its LOCAL_RANK. The probe builds its
inputs with the same functions. torch, transformers and peft are imported inside the functions that use them:
they are heavy, and every input is checked before they load (no checkpoint code of its own unless trusted,
every prompt within the model's context once the processor has loaded and before the weights do).
"""
from __future__ import annotations

import copy
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

from PIL import Image, UnidentifiedImageError

from blender_scenes.errors import InputError
from blender_scenes.prompts import chat_text
from vlm_train.checkpoint import check_model, check_prompt_lengths, library_versions, load_processor, pick_device, \
    resolve_dtype

from . import Answer, Question


class TransformersBackend:
    def __init__(self, settings):
        self.settings = settings
        self.config = check_model_source(settings.model, settings.adapter, settings.trust_remote_code)
        self.device = rank_device(pick_device(settings.device))
        self.processor = self.model = self.generation_config = None

    def check(self, todo: list[Question]) -> None:
        s = self.settings
        self.processor = load_run_processor(s.model, s.adapter, s.trust_remote_code)
        check_prompts(self.processor, self.config, [(f"{s.questions}: question {q.record.id!r}", q.prompt)
                                                    for q in todo], s.model)

    def start(self) -> dict[str, Any]:
        s = self.settings
        _, dtype = resolve_dtype(s.dtype, self.device.split(":")[0])
        self.model, self.processor = load_model(s.model, s.adapter, self.device, dtype, s.trust_remote_code,
                                                self.processor)
        self.generation_config = greedy_config(self.model, self.processor, s.max_new_tokens)
        source = processor_source(s.model, s.adapter)
        return {"model_type": getattr(self.model.config, "model_type", None), "device_used": self.device,
                "dtype_used": str(dtype).removeprefix("torch."), "versions": library_versions(),
                "processor": str(Path(source).resolve()) if Path(source).is_dir() else source,
                "generation": generation_summary(self.generation_config)}

    def answer(self, todo: list[Question]) -> Iterator[list[Answer]]:
        def load_images(batch):
            return [open_image(q.image, self.settings.questions) for q in batch]

        todo_batches = list(batches(todo, self.settings.batch_size))
        # decode the next batch's images while the model answers this one
        with ThreadPoolExecutor(1) as pool:
            upcoming = pool.submit(load_images, todo_batches[0])
            for index, batch in enumerate(todo_batches):
                images = upcoming.result()
                if index + 1 < len(todo_batches):
                    upcoming = pool.submit(load_images, todo_batches[index + 1])
                raws = generate_fitting(self.model, self.processor, [q.prompt for q in batch], images,
                                        self.generation_config)
                yield [Answer(q, raw) for q, raw in zip(batch, raws)]


# --- checks before the weights load --------------------------------------------------------------------------

def check_model_source(model: str, adapter: str | None, trust_remote_code: bool = False):
    """The model's config (`check_model`, shared with the trainer: it resolves, and asks for no code of its own
    unless trusted); an adapter folder must be peft's. Only configs are read here, never the weights."""
    config = check_model(model, trust_remote_code)
    if adapter is not None and not (Path(adapter) / "adapter_config.json").is_file():
        raise InputError(f"--adapter {adapter}: no adapter_config.json (expected a folder saved by peft)")
    return config


def check_prompts(processor, config, prompts: list[tuple[str, str]], model: str) -> None:
    """Every (where, prompt), in the model's chat template, within the model's context (text only; see
    `check_prompt_lengths`)."""
    check_prompt_lengths(processor, config, [(where, chat_text(processor, p)) for where, p in prompts], model)


def rank_device(device: str) -> str:
    """`cuda:LOCAL_RANK` for a process of a torchrun / accelerate job, so each rank has a GPU of its own."""
    if device == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return device


# --- the model -----------------------------------------------------------------------------------------------

def processor_source(model_source: str, adapter: str | None) -> str:
    """The adapter folder when the trainer saved the processor there (what the adapter was trained with),
    else the model's."""
    if adapter and (Path(adapter) / "tokenizer_config.json").is_file():
        return adapter
    return model_source


def load_run_processor(model_source: str, adapter: str | None = None, trust_remote_code: bool = False):
    """The processor a run uses (`processor_source`), set to pad on the left: decoder-only generation continues
    from the last position."""
    source = processor_source(model_source, adapter)
    processor = load_processor(source, trust_remote_code, "--adapter" if source != model_source else "--model")
    processor.tokenizer.padding_side = "left"
    return processor


def load_model(model_source: str, adapter: str | None = None, device: str = "cpu", dtype=None,
               trust_remote_code: bool = False, processor=None):
    """Model (+ peft adapter) in eval mode on `device`, and its processor (`load_run_processor` unless given)."""
    from transformers import AutoModelForImageTextToText

    if processor is None:
        processor = load_run_processor(model_source, adapter, trust_remote_code)
    model = AutoModelForImageTextToText.from_pretrained(model_source, dtype=dtype,
                                                        trust_remote_code=trust_remote_code)
    if adapter:
        from peft import PeftModel

        from vlm_train.lora import quiet_peft

        with quiet_peft():
            model = PeftModel.from_pretrained(model, adapter, trust_remote_code=trust_remote_code)
    model.to(device).eval()
    return model, processor


def greedy_config(model, processor, max_new_tokens: int):
    """The model's own generation config (stop tokens, ...) with sampling switched off."""
    config = copy.deepcopy(model.generation_config)
    config.do_sample = False
    config.num_beams = 1
    config.temperature = config.top_p = config.top_k = None
    config.max_new_tokens = max_new_tokens
    if config.pad_token_id is None:
        config.pad_token_id = processor.tokenizer.pad_token_id
    return config


def generate_answers(model, processor, prompts: list[str], images: list, generation_config) -> list[str]:
    """One greedy answer per (prompt, PIL image), as one left-padded batch."""
    import torch

    texts = [chat_text(processor, p) for p in prompts]
    inputs = processor(text=texts, images=[[im] for im in images], return_tensors="pt", padding=True)
    inputs = inputs.to(model.device, dtype=model.dtype)
    with torch.inference_mode():
        output = model.generate(**inputs, generation_config=generation_config)
    new_tokens = output[:, inputs["input_ids"].shape[1]:]
    return [text.strip() for text in processor.batch_decode(new_tokens, skip_special_tokens=True)]


def generate_fitting(model, processor, prompts: list[str], images: list, generation_config) -> list[str]:
    """generate_answers, halving the batch when the GPU runs out of memory (left padding keeps the
    answers the same whatever the batch)."""
    import torch

    try:
        return generate_answers(model, processor, prompts, images, generation_config)
    except torch.cuda.OutOfMemoryError:
        if len(prompts) == 1:
            raise
        torch.cuda.empty_cache()
        half = len(prompts) // 2
        return (generate_fitting(model, processor, prompts[:half], images[:half], generation_config)
                + generate_fitting(model, processor, prompts[half:], images[half:], generation_config))


def generation_summary(config) -> dict[str, Any]:
    return {"do_sample": config.do_sample, "num_beams": config.num_beams, "max_new_tokens": config.max_new_tokens,
            "eos_token_id": config.eos_token_id, "pad_token_id": config.pad_token_id,
            "repetition_penalty": config.repetition_penalty}


def open_image(path: Path, questions: str):
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError) as err:
        raise InputError(f"{questions}: field 'image': {path} is not a readable image ({err})") from None


def batches(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]
