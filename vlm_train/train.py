"""Fine-tuning a VLM on question records: the transformers `Trainer` with a LoRA (peft) or full model,
evaluation and a checkpoint every epoch, early stopping on validation perplexity, the best weights kept in
`OUT/best`, per-epoch statistics in `OUT/train_stats.json`, and `--resume` from the last checkpoint.

Runs unchanged on one CPU, one GPU, or several GPUs under `accelerate launch` / `torchrun` (DDP through the
Trainer); only the main process writes the run's own files. torch, transformers and peft (and `.lora`, which
imports torch) are imported inside the functions: they are heavy, and every input is checked before they load.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Literal, Sequence

from pydantic import BaseModel, Field, field_validator

from blender_scenes.errors import InputError
from blender_scenes.files import atomic_write_json

from .checkpoint import check_model, library_versions, pick_device, resolve_dtype
from .data import ChatCollator, QuestionDataset, load_examples
from .preview import dry_run


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

    @field_validator("warmup")
    @classmethod
    def _whole_steps(cls, value: float) -> float:
        if value >= 1 and value != int(value):
            raise ValueError("expected a whole number of steps, or a fraction of all steps below 1")
        return value


def last_checkpoint(checkpoints: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None


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
    """Times each epoch into the Trainer state and rewrites `train_stats.json` after every checkpoint."""
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
                atomic_write_json(out / "train_stats.json", {"epochs": epoch_stats(state.log_history),
                                                             "finished": False}, indent=2)

    return StatsCallback()


def _trainer_class():
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
            loaded = type(model).from_pretrained(folder, dtype=model.dtype)
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

    return VLMTrainer


def prepare_model(cfg: TrainConfig, torch_dtype):
    """The model to train (LoRA-wrapped unless --full), its processor, and the LoRA targets used."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from .lora import apply_lora, matched_modules, resolve_targets

    processor = AutoProcessor.from_pretrained(cfg.model)
    model = AutoModelForImageTextToText.from_pretrained(cfg.model, dtype=torch_dtype)
    info: dict = {"model_type": model.config.model_type}
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    if not cfg.full:
        targets = resolve_targets(model, cfg.target_modules)
        info.update(lora_targets=targets, lora_modules=len(matched_modules(model, targets)))
        model = apply_lora(model, targets, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout)
    info["trainable_parameters"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    info["total_parameters"] = sum(p.numel() for p in model.parameters())
    return model, processor, info


def train(cfg: TrainConfig, callbacks: Sequence = ()) -> dict:
    """Run one fine-tuning job; returns the statistics written to `OUT/train_stats.json`.

    Every input is checked before the model loads: question files (non-empty, images on disk and decoding), the
    model path, and the output folder (a folder holding a previous run needs --resume)."""
    train_examples, val_examples = _checked_examples(cfg)
    out = Path(cfg.out)
    checkpoints = out / "checkpoints"
    resume_from = last_checkpoint(checkpoints) if cfg.resume else None
    if not cfg.resume and (checkpoints.is_dir() or (out / "best").exists()):
        raise InputError(f"--out {out}: holds a previous run (expected a new folder, or --resume to continue it)")
    return _run(cfg, train_examples, val_examples, out, resume_from, callbacks)


def dry_run_training(cfg: TrainConfig) -> dict:
    """`train --dry-run`: the same input checks, then the first training batch decoded into `OUT/example.json`
    (see `preview.py`); loads the processor only, never the weights."""
    train_examples, _ = _checked_examples(cfg)
    return dry_run(cfg.model, train_examples, cfg.batch_size, Path(cfg.out))


def _checked_examples(cfg: TrainConfig):
    train_examples = load_examples(cfg.train)
    val_examples = load_examples(cfg.val) if cfg.val else None
    check_model(cfg.model)
    return train_examples, val_examples


def _run(cfg, train_examples, val_examples, out, resume_from, callbacks) -> dict:
    import torch
    import transformers
    from transformers import EarlyStoppingCallback

    # the Trainer puts the model on the GPU when there is one
    dtype_name, torch_dtype = resolve_dtype(cfg.dtype, pick_device("auto"))
    transformers.set_seed(cfg.seed)  # the same LoRA initialisation in every run with this seed
    model, processor, info = prepare_model(cfg, torch.float32 if cfg.full else torch_dtype)
    out.mkdir(parents=True, exist_ok=True)
    args = _training_arguments(cfg, out, dtype_name, evaluate=bool(val_examples))
    trainer = _trainer_class()(
        model=model, args=args, train_dataset=QuestionDataset(train_examples),
        eval_dataset=QuestionDataset(val_examples) if val_examples else None,
        data_collator=ChatCollator(processor),
        callbacks=[_stats_callback(out), *([EarlyStoppingCallback(cfg.patience)] if val_examples else []),
                   *callbacks],
    )
    if trainer.is_world_process_zero():
        atomic_write_json(out / "train_config.json", {
            **cfg.model_dump(), "dtype_resolved": dtype_name, **info,
            "train_examples": len(train_examples), "val_examples": len(val_examples or []),
            "world_size": args.world_size, "resumed_from": resume_from, "versions": library_versions()}, indent=2)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from)
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
        # accelerate runs several CPU processes as DDP (gloo) only when told to use the CPU
        use_cpu=not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1,
    )


def _final_stats(trainer, cfg: TrainConfig, seconds: float) -> dict:
    """What `OUT/train_stats.json` says once training has ended: every epoch, the best one, early stop."""
    stats = {"epochs": epoch_stats(trainer.state.log_history),
             "best_checkpoint": trainer.state.best_model_checkpoint, "best_val_loss": trainer.state.best_metric,
             "stopped_early": trainer.state.epoch < cfg.epochs - 1e-6,
             "wall_time_s": round(seconds, 3), "finished": True}
    if stats["best_val_loss"] is not None:
        stats["best_val_perplexity"] = math.exp(min(stats["best_val_loss"], 700.0))
        stats["best_epoch"] = min(stats["epochs"], key=lambda e: e.get("val_loss", math.inf))["epoch"]
    return stats


def _save_best(trainer, processor, out: Path, stats: dict) -> None:
    """The model's weights and the processor into `OUT/best`, then the final statistics (main process)."""
    # load_best_model_at_end has put the best weights back into the model (the last ones without --val);
    # written under a temporary name first so `best/` is never half-written
    staging = out / ".best.tmp"
    if trainer.is_world_process_zero() and staging.exists():
        shutil.rmtree(staging)  # left by a run killed while saving
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(staging))  # every rank calls it; only the main process writes
    if trainer.is_world_process_zero():
        processor.save_pretrained(str(staging))
        if (out / "best").exists():
            shutil.rmtree(out / "best")
        staging.rename(out / "best")
        atomic_write_json(out / "train_stats.json", stats, indent=2)
    trainer.accelerator.wait_for_everyone()
