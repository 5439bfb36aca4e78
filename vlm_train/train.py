"""Fine-tuning a VLM on question records: the transformers `Trainer` with a LoRA (peft) or full model,
evaluation and a checkpoint every epoch, early stopping on validation perplexity, the best weights kept in
`OUT/best`, per-epoch statistics in `OUT/train_stats.json` and their picture `OUT/train_curve.png` (both rewritten
after every epoch), a progress bar per epoch and a line of losses after it on stderr (main process), and `--resume`
from the newest complete checkpoint (one cut short by a kill or a full disk is named and removed). `best/` is
written under a temporary name and renamed whole; a full disk is one OSError naming the folder being written (the
CLI makes it one line).

Runs unchanged on one CPU, one GPU, or several GPUs under `accelerate launch` / `torchrun` (DDP through the
Trainer); only the main process writes the run's own files. torch, transformers and peft (and `.lora`, which
imports torch) are imported inside the functions: they are heavy, and every input is checked before they load.
"""
from __future__ import annotations

import errno
import inspect
import json
import math
import os
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, Sequence

from pydantic import BaseModel, Field, field_validator

from blender_scenes.errors import InputError
from blender_scenes.files import atomic_write_json, remove_dead_temporaries, replace_folder, temporary_name
from blender_scenes.images import DEFAULT_MAX_IMAGE_PIXELS
from blender_scenes.prompts import chat_turns

from .checkpoint import (check_model, check_prompt_lengths, library_versions, load_processor, pick_device,
                         resolve_dtype)
from .curve import CURVE, best_epoch, write_curve
from .data import IGNORE_INDEX, ChatCollator, QuestionDataset, load_examples
from .preview import dry_run
from .resume import being_written, disk_full, resume_point


class TrainConfig(BaseModel):
    """Everything a run depends on; written to `OUT/train_config.json`. Defaults are the study's recipe."""

    model: str
    train: str
    val: str | None = None
    out: str
    lora_r: int = Field(32, ge=1)
    lora_alpha: int = Field(64, ge=1)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: str = "auto"
    full: bool = False
    lr: float = Field(1e-5, gt=0)
    # linear warm-up of the learning rate: steps, or a fraction of all steps when below 1 (the Trainer's rule)
    warmup: float = Field(0.0, ge=0)
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(1, ge=1)
    grad_accum: int = Field(1, ge=1)
    patience: int = Field(2, ge=1)
    dtype: Literal["auto", "bf16", "fp32"] = "auto"
    gradient_checkpointing: bool = False
    resume: bool = False
    seed: int = 42
    # run the checkpoint's own Python files (config.json auto_map); never without the user's --trust-remote-code
    trust_remote_code: bool = False
    max_image_pixels: int = Field(DEFAULT_MAX_IMAGE_PIXELS, ge=1)

    @field_validator("warmup")
    @classmethod
    def _whole_steps(cls, value: float) -> float:
        if value >= 1 and value != int(value):
            raise ValueError("expected a whole number of steps, or a fraction of all steps below 1")
        return value


# --- the run ------------------------------------------------------------------------------------------------


def epoch_stats(log_history: list[dict]) -> list[dict]:
    """Per epoch: train loss, val loss, val perplexity, train time, from the Trainer's log history (which
    checkpoints carry, so a resumed run reports the epochs before the kill too)."""
    epochs: dict[int, dict] = {}
    for entry in log_history:
        if "epoch" not in entry:
            continue
        row = epochs.setdefault(int(round(entry["epoch"])), {"epoch": int(round(entry["epoch"]))})
        if "loss" in entry:
            row["train_loss"] = entry["loss"]
        if "eval_loss" in entry:
            row["val_loss"] = entry["eval_loss"]
            row["val_perplexity"] = math.exp(min(entry["eval_loss"], 700.0))
            row["val_time_s"] = entry.get("eval_runtime")
        if "epoch_train_time_s" in entry:
            row["train_time_s"] = entry["epoch_train_time_s"]
    return [epochs[k] for k in sorted(epochs)]


def _stats_callback(out: Path):
    """Times each epoch into the Trainer state and rewrites `train_stats.json` and `train_curve.png` after every
    checkpoint (so a killed run keeps both; a resumed one draws every epoch, the log history being saved)."""
    from transformers import TrainerCallback

    class StatsCallback(TrainerCallback):
        def __init__(self):
            self.started = None

        def on_epoch_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kwargs):
            # kept in log_history so it is saved with the checkpoint and survives --resume
            state.log_history.append({"epoch": round(state.epoch), "epoch_train_time_s":
                                      round(time.perf_counter() - self.started, 3)})

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                with open(out / "train.log", "a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"step": state.global_step, **logs}) + "\n")

        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                stats = {"epochs": epoch_stats(state.log_history), "finished": False}
                atomic_write_json(out / "train_stats.json", stats, indent=2)
                write_curve(stats, out / CURVE)

    return StatsCallback()


class _LineStream:
    """stderr when it is not a terminal (a log file, CI, a pipe): each update of a bar becomes a line of its own,
    where a terminal overwrites it in place after a carriage return; a cleared bar leaves nothing."""

    def __init__(self, stream):
        self.stream = stream
        self.encoding = getattr(stream, "encoding", None) or "utf-8"

    def write(self, text: str) -> None:
        line = text.replace("\r", "").rstrip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


def _progress_callback(patience: int | None):
    """A bar per epoch (optimizer steps done of the epoch's, its mean train loss so far, rate, time left) and
    per validation, then one line of the epoch's losses; on the main process only, on stderr. On a terminal the
    bar redraws every second; elsewhere it writes a line when it starts, every 30 s and when it ends."""
    from tqdm import tqdm
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        def __init__(self):
            self.bar = self.val_bar = None
            self.loss_sum, self.loss_read = None, 0.0
            self.shown, self.epoch = False, 0

        def add_loss(self, loss) -> None:
            """Each micro-batch's loss as the Trainer reports it (a detached tensor: added on its device, read
            about once a second, so a GPU is not made to wait at every step)."""
            self.loss_sum = loss if self.loss_sum is None else self.loss_sum + loss

        def on_train_begin(self, args, state, control, **kwargs):
            self.shown = state.is_world_process_zero
            self.epochs = state.num_train_epochs
            self.per_epoch = math.ceil(state.max_steps / max(1, state.num_train_epochs))
            self.tty = getattr(sys.stderr, "isatty", lambda: False)()
            self.stream = sys.stderr if self.tty else _LineStream(sys.stderr)
            self.interval = 1.0 if self.tty else 30.0

        def _new_bar(self, desc: str, total: int, initial: int, unit: str, leave: bool):
            return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=self.stream, leave=leave,
                        mininterval=self.interval, dynamic_ncols=self.tty)

        def on_epoch_begin(self, args, state, control, **kwargs):
            if not self.shown:
                return
            self.epoch = state.global_step // self.per_epoch + 1
            self.first_step = (self.epoch - 1) * self.per_epoch
            self.loss_sum = None
            self.bar = self._new_bar(f"epoch {self.epoch}/{self.epochs}", self.per_epoch,
                                     state.global_step - self.first_step, "step", leave=True)

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is None:
                return
            done = state.global_step - self.first_step
            now = time.monotonic()
            if self.loss_sum is not None and (done >= self.per_epoch or now - self.loss_read >= 1.0):
                self.loss_read = now
                self.bar.set_postfix(loss=f"{float(self.loss_sum) / max(1, done):.4g}", refresh=False)
            self.bar.update(1)

        def on_epoch_end(self, args, state, control, **kwargs):
            self._close("bar")

        def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
            if not self.shown or eval_dataloader is None:
                return
            if self.val_bar is None:
                # a terminal keeps the epoch's bar and its summary line; a log keeps the validation's last line too
                self.val_bar = self._new_bar(f"epoch {self.epoch}/{self.epochs} val", len(eval_dataloader), 0,
                                             "batch", leave=not self.tty)
            self.val_bar.update(1)

        def on_evaluate(self, args, state, control, **kwargs):
            self._close("val_bar")

        def on_save(self, args, state, control, **kwargs):
            if self.shown:
                print(epoch_line(epoch_stats(state.log_history), self.epoch, self.epochs), file=sys.stderr,
                      flush=True)

        def on_train_end(self, args, state, control, **kwargs):
            self.close()
            if self.shown and patience and state.global_step < state.max_steps:
                print(f"stopped early after epoch {self.epoch}/{self.epochs}: no better val loss in {patience} "
                      "epochs", file=sys.stderr, flush=True)

        def _close(self, name: str) -> None:
            bar = getattr(self, name)
            if bar is not None:
                bar.close()
                setattr(self, name, None)

        def close(self) -> None:
            """End the bars still drawn (an error's line then starts a line of its own)."""
            self._close("bar")
            self._close("val_bar")

    return ProgressCallback()


def epoch_line(epochs: list[dict], epoch: int, of: int) -> str:
    """`epoch 2/3: train loss 0.8312, val loss 0.9104 (best)`: one epoch's losses, `(best)` where its val loss
    is the lowest so far (the first of equal ones, as the Trainer keeps its best checkpoint)."""
    row = next((e for e in epochs if e["epoch"] == epoch), {})
    parts = [f"{name} loss {row[key]:.4g}" for name, key in (("train", "train_loss"), ("val", "val_loss"))
             if row.get(key) is not None]
    best = " (best)" if row.get("val_loss") is not None and best_epoch(epochs) == epoch else ""
    return f"epoch {epoch}/{of}: {', '.join(parts) or 'no loss logged'}{best}"


def answer_logits_only(inputs: dict) -> dict:
    """The batch with `logits_to_keep` = the last positions the loss reads, and its labels cut to match.

    A causal LM's loss reads the logits of the positions just before a labelled token only. In our batches (right
    padding, labels on the answer turn) those are the last few columns; the image and prompt tokens before them are
    most of the sequence. Projecting only the kept positions onto the vocabulary (49k-152k entries) saves the
    output layer's work and the memory of the whole (batch, sequence, vocabulary) logits, their float copy and their
    gradient, as TRL's fused head does on GPUs. The loss is the same: the same positions, labels and count (the
    first kept column's labels are all -100, and the loss shifts labels by one, so it is never a target)."""
    labels = inputs.get("labels")
    if labels is None or "logits_to_keep" in inputs:
        return inputs
    labelled = (labels != IGNORE_INDEX).any(dim=0).nonzero()
    if len(labelled) == 0:
        return inputs
    keep = labels.shape[1] - int(labelled[0]) + 1   # from the column before the first labelled one to the end
    if keep >= labels.shape[1]:
        return inputs
    return {**inputs, "labels": labels[:, -keep:], "logits_to_keep": keep}


def _trainer_class(trust_remote_code: bool):
    from transformers import Trainer

    class VLMTrainer(Trainer):
        """transformers 5 saves some families (Qwen2-VL, Qwen2.5-VL, ...) in their original hub key layout, which
        the Trainer's resume and best-model loaders (a plain `load_state_dict`) do not map back, silently keeping
        the current weights. For full (non-LoRA) runs the checkpoint is read through `from_pretrained`, which
        maps keys, and copied in strictly. LoRA adapters and FSDP/DeepSpeed checkpoints use the Trainer's path."""

        def _full_model(self):
            from peft import PeftModel

            model = self.accelerator.unwrap_model(self.model)
            plain = not (isinstance(model, PeftModel) or self.is_fsdp_enabled or self.is_deepspeed_enabled)
            return model if plain else None

        def _copy_weights_from(self, folder: str, model) -> None:
            # the class is the one already loaded (its own code only if the user trusted it at the start)
            loaded = type(model).from_pretrained(folder, dtype=model.dtype, trust_remote_code=trust_remote_code)
            model.load_state_dict(loaded.state_dict())

        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            full = self._full_model()
            if full is None:
                return super()._load_from_checkpoint(resume_from_checkpoint, model)
            self._copy_weights_from(resume_from_checkpoint, full)

        def _load_best_model(self):
            full = self._full_model()
            if full is None:
                return super()._load_best_model()
            self._copy_weights_from(self.state.best_model_checkpoint, full)

        # the progress bar's `add_loss`, when there is a bar
        loss_seen = None

        def training_step(self, model, inputs, num_items_in_batch=None):
            loss = super().training_step(model, inputs, num_items_in_batch)
            if self.loss_seen is not None:
                self.loss_seen(loss)
            return loss

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self._takes_logits_to_keep():
                inputs = answer_logits_only(inputs)
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

        def _takes_logits_to_keep(self) -> bool:
            # every family of our table does; a checkpoint's own code may not
            if not hasattr(self, "_logits_to_keep"):
                model = self.accelerator.unwrap_model(self.model)
                base = model.get_base_model() if hasattr(model, "get_base_model") else model
                self._logits_to_keep = "logits_to_keep" in inspect.signature(base.forward).parameters
            return self._logits_to_keep

    return VLMTrainer


def prepare_model(cfg: TrainConfig, torch_dtype):
    """The model to train (LoRA-wrapped unless --full) and what a run records of it (LoRA targets, sizes)."""
    from transformers import AutoModelForImageTextToText

    from .lora import apply_lora, matched_modules, resolve_targets

    model = AutoModelForImageTextToText.from_pretrained(cfg.model, dtype=torch_dtype,
                                                        trust_remote_code=cfg.trust_remote_code)
    info: dict = {"model_type": model.config.model_type}
    if cfg.gradient_checkpointing:
        enable = getattr(model, "activation_checkpointing_enable", None)   # the name transformers 5.2x keeps
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    if not cfg.full:
        targets = resolve_targets(model, cfg.target_modules)
        info.update(lora_targets=targets, lora_modules=len(matched_modules(model, targets)))
        model = apply_lora(model, targets, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout)
    info["trainable_parameters"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    info["total_parameters"] = sum(p.numel() for p in model.parameters())
    return model, info


def train(cfg: TrainConfig, callbacks: Sequence = (), progress: bool = True) -> dict:
    """Run one fine-tuning job; returns the statistics written to `OUT/train_stats.json`. `progress`: the bars
    and per-epoch lines on stderr.

    Every input is checked before the model loads: question files (non-empty, images on disk, within the pixel
    limit and decoding), the model (its config, no code of its own unless trusted), every conversation within the
    model's context, and the output folder (a folder holding a previous run needs --resume)."""
    out = Path(cfg.out)
    checkpoints = out / "checkpoints"
    if not cfg.resume and (checkpoints.is_dir() or (out / "best").exists()):
        raise InputError(f"--out {out}: holds a previous run (expected a new folder, or --resume to continue it)")
    train_examples, val_examples, processor = _checked_inputs(cfg)
    resume_from = resume_point(checkpoints) if cfg.resume else None
    try:
        with _library_bars(progress):
            return _run(cfg, train_examples, val_examples, processor, out, resume_from, callbacks, progress)
    except Exception as err:
        if not disk_full(err, out):
            raise
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(being_written(out))) from err


@contextmanager
def _library_bars(shown: bool):
    """transformers' and the Hub's own bars (loading and writing weights) off for a run without progress, then
    back as they were."""
    from transformers.utils import logging as hf_logging

    hide = not shown and hf_logging.is_progress_bar_enabled()
    if hide:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if hide:
            hf_logging.enable_progress_bar()


def dry_run_training(cfg: TrainConfig) -> dict:
    """`train --dry-run`: the same input checks, then the first training batch decoded into `OUT/example.json`
    (see `preview.py`); loads the processor only, never the weights."""
    train_examples, _, processor = _checked_inputs(cfg)
    return dry_run(processor, train_examples, cfg.batch_size, Path(cfg.out))


def _checked_inputs(cfg: TrainConfig):
    """The examples of both files and the model's processor, once every input is checked. Each conversation
    (prompt and answer in the chat template) is tokenized, text only, to refuse one longer than the model's
    context before any weights load."""
    train_examples = load_examples(cfg.train, cfg.max_image_pixels)
    val_examples = load_examples(cfg.val, cfg.max_image_pixels) if cfg.val else None
    config = check_model(cfg.model, cfg.trust_remote_code)
    processor = load_processor(cfg.model, cfg.trust_remote_code)
    conversations = [(f"{path}: record {n} (id '{ex.id}')",
                      processor.apply_chat_template(chat_turns(ex.prompt, ex.answer), tokenize=False))
                     for path, examples in ((cfg.train, train_examples), (cfg.val, val_examples or []))
                     for n, ex in enumerate(examples, 1)]
    check_prompt_lengths(processor, config, conversations, cfg.model, "conversation (prompt and answer)")
    return train_examples, val_examples, processor


def _run(cfg, train_examples, val_examples, processor, out, resume_from, callbacks, progress) -> dict:
    import torch
    import transformers
    from transformers import EarlyStoppingCallback, PrinterCallback

    # the Trainer puts the model on the GPU when there is one
    dtype_name, torch_dtype = resolve_dtype(cfg.dtype, pick_device("auto"))
    transformers.set_seed(cfg.seed)  # the same LoRA initialisation in every run with this seed
    model, info = prepare_model(cfg, torch.float32 if cfg.full else torch_dtype)
    out.mkdir(parents=True, exist_ok=True)
    args = _training_arguments(cfg, out, dtype_name, evaluate=bool(val_examples))
    bars = [_progress_callback(cfg.patience if val_examples else None)] if progress else []
    trainer = _trainer_class(cfg.trust_remote_code)(
        model=model, args=args, train_dataset=QuestionDataset(train_examples),
        eval_dataset=QuestionDataset(val_examples) if val_examples else None,
        data_collator=ChatCollator(processor),
        callbacks=[_stats_callback(out), *([EarlyStoppingCallback(cfg.patience)] if val_examples else []), *bars,
                   *callbacks],
    )
    # the Trainer prints each log dict to stdout when its own bar is off; train.log and the lines above say it
    trainer.remove_callback(PrinterCallback)
    if bars:
        trainer.loss_seen = bars[0].add_loss
    if trainer.is_world_process_zero():
        atomic_write_json(out / "train_config.json", {
            **cfg.model_dump(), "dtype_resolved": dtype_name, **info,
            "train_examples": len(train_examples), "val_examples": len(val_examples or []),
            "world_size": args.world_size, "resumed_from": resume_from, "versions": library_versions()}, indent=2)
    started = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=resume_from)
    finally:
        for bar in bars:
            bar.close()
    stats = _final_stats(trainer, cfg, time.perf_counter() - started)
    _save_best(trainer, processor, out, stats)
    return stats


def _training_arguments(cfg: TrainConfig, out: Path, dtype_name: str, evaluate: bool):
    """The Trainer's settings: evaluate, checkpoint and log once per epoch; keep the best checkpoint by val loss."""
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(out / "checkpoints"),
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.lr, num_train_epochs=cfg.epochs,
        warmup_steps=cfg.warmup if cfg.warmup < 1 else int(cfg.warmup),
        optim="adamw_torch", seed=cfg.seed, data_seed=cfg.seed,
        eval_strategy="epoch" if evaluate else "no", save_strategy="epoch", logging_strategy="epoch",
        load_best_model_at_end=evaluate, metric_for_best_model="eval_loss", greater_is_better=False,
        # keeps the best checkpoint and the latest (the Trainer never deletes the best)
        save_total_limit=2,
        prediction_loss_only=True, label_names=["labels"], remove_unused_columns=False,
        bf16=dtype_name == "bf16", report_to="none", disable_tqdm=True, dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        ddp_find_unused_parameters=False,
        # accelerate runs several CPU processes as DDP (gloo) only when told to use the CPU, and the Trainer refuses
        # bf16 without a GPU unless told so (it then trains in bf16 autocast on the CPU)
        use_cpu=not torch.cuda.is_available() and (int(os.environ.get("WORLD_SIZE", "1")) > 1 or dtype_name == "bf16"),
    )


def _final_stats(trainer, cfg: TrainConfig, seconds: float) -> dict:
    """What `OUT/train_stats.json` says once training has ended: every epoch, the best one, early stop."""
    stats = {"epochs": epoch_stats(trainer.state.log_history),
             "best_checkpoint": trainer.state.best_model_checkpoint, "best_val_loss": trainer.state.best_metric,
             "stopped_early": trainer.state.epoch < cfg.epochs - 1e-6,
             "wall_time_s": round(seconds, 3), "finished": True}
    if stats["best_val_loss"] is not None:
        stats["best_val_perplexity"] = math.exp(min(stats["best_val_loss"], 700.0))
        stats["best_epoch"] = best_epoch(stats["epochs"])
    return stats


def _save_best(trainer, processor, out: Path, stats: dict) -> None:
    """The model's weights and the processor into `OUT/best`, then the final statistics (main process)."""
    from accelerate.utils import broadcast_object_list

    # load_best_model_at_end has put the best weights back into the model (the last ones without --val);
    # written under a temporary name (`.best.HOST-PID.tmp`, the main process's: every rank saves into the same
    # folder) and renamed whole, so `best/` is never half-written
    best = out / "best"
    staging = [str(temporary_name(best))]
    broadcast_object_list(staging, from_process=0)
    staging = Path(staging[0])
    if trainer.is_world_process_zero():
        remove_dead_temporaries(out, prefix=".best.")   # left by a run killed while saving
    trainer.accelerator.wait_for_everyone()
    try:
        trainer.save_model(str(staging))  # every rank calls it; only the main process writes
        if trainer.is_world_process_zero():
            processor.save_pretrained(str(staging))
            replace_folder(staging, best)
    except BaseException:
        if trainer.is_world_process_zero():
            shutil.rmtree(staging, ignore_errors=True)   # a full disk gets its space back
        raise
    if trainer.is_world_process_zero():
        atomic_write_json(out / "train_stats.json", stats, indent=2)
        write_curve(stats, out / CURVE)   # the same picture, now from the final statistics
    trainer.accelerator.wait_for_everyone()

