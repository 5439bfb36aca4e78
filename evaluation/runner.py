"""The model runner: answer a question file with a VLM (optionally + a LoRA adapter) into a run directory.

Any family that transformers' `AutoModelForImageTextToText` and `AutoProcessor` load works: the prompt is
built by the shared `record_prompt`, wrapped in the model's own chat template by the shared `chat_text`
(`blender_scenes/prompts.py`, as in training), and answered by greedy
decoding in left-padded batches. `predictions.jsonl` grows batch by batch, so a killed run resumes where it
stopped; `score_run` then writes metrics.json. torch, transformers and peft are imported inside the functions
that use them: they are heavy, and every input is checked before they load (images within the pixel limit, no
checkpoint code of its own unless trusted, every prompt within the model's context, the last once the processor
has loaded and before the weights do).
"""
from __future__ import annotations

import contextlib
import copy
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from blender_scenes.errors import InputError
from blender_scenes.files import atomic_write_json, atomic_write_text, read_json
from blender_scenes.images import DEFAULT_MAX_IMAGE_PIXELS
from blender_scenes.prompts import chat_text, record_prompt
from blender_scenes.questions import QuestionRecord, read_questions, resolve_image
from vlm_train.checkpoint import (check_model, check_prompt_lengths, library_versions, load_processor, pick_device,
                                  resolve_dtype)
from vlm_train.images import check_image

from .rundir import PREDICTIONS, RUN, read_run_info
from .score import prediction_row, score_run

# run.json fields that must match for a run directory to be resumed (they change the answers)
_RESUME_KEYS = ("model", "adapter", "questions", "max_new_tokens", "dtype", "weights")
_WEIGHT_FILES = ("*.safetensors", "*.bin", "*.pt", "*.pth")


@dataclass(frozen=True)
class RunSettings:
    model: str
    questions: str
    out: str
    adapter: str | None = None
    batch_size: int = 8
    max_new_tokens: int = 16
    limit: int | None = None
    device: str = "auto"  # auto | cpu | cuda
    dtype: str = "auto"  # auto | bf16 | fp32
    trust_remote_code: bool = False  # run the checkpoint's own Python files (config.json auto_map)
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS


# --- inputs, checked before any model work -----------------------------------------------------------------

def load_run_questions(settings: RunSettings) -> list[tuple[QuestionRecord, Path]]:
    """The records to answer (first `limit`), each with its image path; every image must exist, be within the
    pixel limit and decode."""
    questions = read_questions(settings.questions)
    if not questions:
        raise InputError(f"{settings.questions}: no questions (expected at least one question record per line)")
    if settings.limit is not None:
        questions = questions[: settings.limit]
    seen: set[str] = set()
    out = []
    for record in questions:
        if record.id in seen:
            raise InputError(f"{settings.questions}: field 'id': {record.id!r} appears twice (expected unique ids)")
        seen.add(record.id)
        image = resolve_image(record, settings.questions)
        check_image(image, f"{settings.questions}: question {record.id!r}", settings.max_image_pixels)
        out.append((record, image))
    return out


def check_model_source(model: str, adapter: str | None, trust_remote_code: bool = False):
    """The model's config (`check_model`, shared with the trainer: it resolves, and asks for no code of its own
    unless trusted); an adapter folder must be peft's. Only configs are read here, never the weights."""
    config = check_model(model, trust_remote_code)
    if adapter is not None and not (Path(adapter) / "adapter_config.json").is_file():
        raise InputError(f"--adapter {adapter}: no adapter_config.json (expected a folder saved by peft)")
    return config


def check_prompts(processor, config, items: list[tuple[QuestionRecord, Path]], settings: RunSettings) -> None:
    """Every prompt, in the model's chat template, within the model's context (text only; see
    `check_prompt_lengths`)."""
    texts = [(f"{settings.questions}: question {record.id!r}", chat_text(processor, record_prompt(record)))
             for record, _ in items]
    check_prompt_lengths(processor, config, texts, settings.model)


def check_resumable(settings: RunSettings, run_file: Path, predictions: Path) -> None:
    """Refuse to append to a run directory made with other settings (its answers would be mixed)."""
    if not (run_file.is_file() and predictions.is_file()):
        return
    previous = read_json(run_file, "the run's settings; remove the run folder")
    mine = run_record(settings)
    for key in _RESUME_KEYS:
        if previous.get(key) != mine[key]:
            raise InputError(f"{run_file}: field '{key}': this run used {previous.get(key)!r}, not {mine[key]!r} "
                             f"(expected the same settings to resume; use another --out)")


def run_record(settings: RunSettings) -> dict[str, Any]:
    record = asdict(settings)
    record["questions"] = str(Path(settings.questions).resolve())
    if Path(settings.model).is_dir():
        record["model"] = str(Path(settings.model).resolve())
    if settings.adapter:
        record["adapter"] = str(Path(settings.adapter).resolve())
    record.pop("out")
    # a model retrained into the same folder keeps its path: the weights' fingerprint tells the runs apart
    record["weights"] = {name: weights_fingerprint(Path(path)) for name, path in
                         (("model", settings.model), ("adapter", settings.adapter)) if path and Path(path).is_dir()}
    return record


def weights_fingerprint(folder: Path, blocks: int = 16, block_size: int = 65_536) -> str:
    """sha256 over a folder's weight files: each one's name, size and `blocks` blocks of bytes read at evenly
    spaced offsets (the whole file when it is smaller). Training changes every tensor, so two different sets of
    weights differ in these blocks, while a 15 GB checkpoint is fingerprinted in milliseconds."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for pattern in _WEIGHT_FILES for p in folder.glob(pattern)):
        size = path.stat().st_size
        digest.update(f"{path.name}\0{size}\0".encode())
        with path.open("rb") as fh:
            if size <= blocks * block_size:
                digest.update(fh.read())
                continue
            for i in range(blocks):
                fh.seek(i * (size - block_size) // (blocks - 1))
                digest.update(fh.read(block_size))
    return digest.hexdigest()


# --- resume ------------------------------------------------------------------------------------------------

def completed_rows(predictions: Path) -> list[dict]:
    """Rows already written; a partial or unreadable last line (a kill while writing) is dropped, and the
    file is rewritten without it so appends start on a clean line."""
    if not predictions.is_file():
        return []
    lines = predictions.read_text(encoding="utf-8").splitlines(keepends=True)
    rows: list[dict] = []
    for lineno, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
            if not line.endswith("\n"):
                raise ValueError("no newline")
        except ValueError:
            if lineno == len(lines):
                break  # the line being written when the run stopped
            raise InputError(f"{predictions}:{lineno}: not valid JSON (expected one prediction per line; "
                             f"remove the run folder to start again)") from None
        if not (isinstance(row, dict) and isinstance(row.get("id"), str)):
            raise InputError(f"{predictions}:{lineno}: field 'id': expected a prediction object with a string id")
        rows.append(row)
    rows = list({row["id"]: row for row in rows}.values())
    atomic_write_text(predictions, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return rows


# --- the model ---------------------------------------------------------------------------------------------

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


def open_image(path: Path, questions: str):
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError) as err:
        raise InputError(f"{questions}: field 'image': {path} is not a readable image ({err})") from None


def batches(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# --- the run -----------------------------------------------------------------------------------------------

def run_evaluation(settings: RunSettings, progress: bool = True) -> dict:
    """Answer every question of `settings.questions` into `settings.out`; returns score_run's metrics."""
    if settings.batch_size < 1 or settings.max_new_tokens < 1 or (settings.limit is not None and settings.limit < 1):
        raise InputError("--batch-size, --max-new-tokens and --limit: expected positive integers")
    out = Path(settings.out)
    run_file, predictions = out / RUN, out / PREDICTIONS
    items = load_run_questions(settings)
    config = check_model_source(settings.model, settings.adapter, settings.trust_remote_code)
    check_resumable(settings, run_file, predictions)
    device = pick_device(settings.device)

    done = {row["id"] for row in completed_rows(predictions)}
    todo = [(record, image) for record, image in items if record.id not in done]
    info = run_record(settings)
    if todo:   # the processor before the weights: a prompt too long for the model stops the run here
        processor = load_run_processor(settings.model, settings.adapter, settings.trust_remote_code)
        check_prompts(processor, config, todo, settings)
    out.mkdir(parents=True, exist_ok=True)
    if todo:
        _, dtype = resolve_dtype(settings.dtype, device)
        model, processor = load_model(settings.model, settings.adapter, device, dtype, settings.trust_remote_code,
                                      processor)
        generation_config = greedy_config(model, processor, settings.max_new_tokens)
        info.update(_environment(model, device, dtype), status="running",
                    processor=processor_source(info["model"], info["adapter"]),
                    generation=_generation_summary(generation_config))
        atomic_write_json(run_file, info, indent=2)
        start = time.perf_counter()
        try:
            seconds = _answer(model, processor, generation_config, todo, predictions, settings, len(done), progress)
        except BaseException as err:   # a signal, a full disk, a crash: run.json says the run stopped, and why
            info.update(status="stopped", stopped_by=type(err).__name__)
            with contextlib.suppress(OSError):
                atomic_write_json(run_file, info, indent=2)
            raise
        wall = time.perf_counter() - start
        info.update(status="complete", answered_now=len(todo), generate_seconds=round(seconds, 3),
                    wall_seconds=round(wall, 3), questions_per_second=round(len(todo) / wall, 4))
    else:
        previous = read_run_info(run_file) or {}
        info = {**previous, **info, "status": "complete", "answered_now": 0}
    atomic_write_json(run_file, info, indent=2)
    return score_run(out, settings.questions)


def _answer(model, processor, generation_config, todo, predictions: Path, settings: RunSettings,
            already: int, progress: bool) -> float:
    """Answer `todo` batch by batch, appending rows; returns the seconds spent in generation."""
    def load_images(batch):
        return [open_image(path, settings.questions) for _, path in batch]

    seconds = 0.0
    todo_batches = list(batches(todo, settings.batch_size))
    bar = tqdm(total=already + len(todo), initial=already, unit="q", desc="evaluate", disable=not progress,
               dynamic_ncols=True)
    # decode the next batch's images while the model answers this one
    with predictions.open("a", encoding="utf-8") as fh, ThreadPoolExecutor(1) as pool:
        upcoming = pool.submit(load_images, todo_batches[0])
        for index, batch in enumerate(todo_batches):
            images = upcoming.result()
            if index + 1 < len(todo_batches):
                upcoming = pool.submit(load_images, todo_batches[index + 1])
            start = time.perf_counter()
            answers = _generate_fitting(model, processor, [record_prompt(r) for r, _ in batch], images,
                                        generation_config)
            seconds += time.perf_counter() - start
            fh.write("".join(json.dumps(prediction_row(r, raw), ensure_ascii=False) + "\n"
                             for (r, _), raw in zip(batch, answers)))
            fh.flush()
            os.fsync(fh.fileno())
            bar.update(len(batch))
    bar.close()
    return seconds


def _generate_fitting(model, processor, prompts: list[str], images: list, generation_config) -> list[str]:
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
        return (_generate_fitting(model, processor, prompts[:half], images[:half], generation_config)
                + _generate_fitting(model, processor, prompts[half:], images[half:], generation_config))


def _environment(model, device: str, dtype) -> dict[str, Any]:
    config = getattr(model, "config", None)
    return {"model_type": getattr(config, "model_type", None), "device_used": device,
            "dtype_used": str(dtype).removeprefix("torch."), "versions": library_versions()}


def _generation_summary(config) -> dict[str, Any]:
    return {"do_sample": config.do_sample, "num_beams": config.num_beams, "max_new_tokens": config.max_new_tokens,
            "eos_token_id": config.eos_token_id, "pad_token_id": config.pad_token_id,
            "repetition_penalty": config.repetition_penalty}
