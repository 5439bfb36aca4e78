"""Commands of the training package: train, export, tiny-model, merge-adapter."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from vlm_train.export import FORMATS
from vlm_train.families import FAMILIES

from .options import dtype_option, max_image_pixels_option, real_stream, trust_remote_code_option, writes, wrote

HARNESS_FORMATS = ("vlmevalkit", "lmms-eval")   # evaluation/export_harness.py

# Library modules are imported inside the commands, so that `scenes2real --help` starts in ~0.7 s, not ~1.7 s.

@click.command("train")
@click.option("--model", required=True, help="Model folder or hub id (Auto classes: image-text-to-text).")
@click.option("--train", "train_file", required=True, type=click.Path(dir_okay=False),
              help="Training question file (*.jsonl).")
@click.option("--val", "val_file", type=click.Path(dir_okay=False),
              help="Validation question file: evaluated every epoch for early stopping and the best checkpoint.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder.")
@click.option("--lora-r", default=32, show_default=True, type=int,
              help="LoRA rank: the width of each adapter's low-rank update (more = more trainable parameters).")
@click.option("--lora-alpha", default=64, show_default=True, type=int,
              help="LoRA scaling: the update is multiplied by alpha / r (the study: alpha = 2r).")
@click.option("--lora-dropout", default=0.0, show_default=True, type=float,
              help="Dropout on the adapters' input during training.")
@click.option("--target-modules", default="auto", show_default=True,
              help="'auto' (q/k/v of the language model and vision encoder) or comma-separated module names.")
@click.option("--full", is_flag=True, help="Train every weight instead of LoRA adapters.")
@click.option("--lr", default=1e-5, show_default=True, type=float, help="AdamW learning rate.")
@click.option("--warmup", default=0.0, show_default=True, type=float,
              help="Linear learning-rate warm-up: a number of steps, or a fraction of all steps when below 1.")
@click.option("--epochs", default=10, show_default=True, type=int,
              help="Most passes over --train; early stopping on --val may end sooner (--patience).")
@click.option("--batch-size", default=1, show_default=True, type=int, help="Per device.")
@click.option("--grad-accum", default=1, show_default=True, type=int,
              help="Batches whose gradients add up before each optimizer step (effective batch = batch size x "
                   "this x processes).")
@click.option("--patience", default=2, show_default=True, type=int,
              help="Epochs without a better validation perplexity before stopping.")
@dtype_option
@click.option("--gradient-checkpointing", is_flag=True, help="Trade compute for GPU memory.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--seed", default=42, show_default=True, type=int, help="Seed of the adapters' init and data order.")
@trust_remote_code_option
@max_image_pixels_option
@click.option("--dry-run", is_flag=True,
              help="Build the first batch, print its templated text and label tokens, write OUT/example.json, "
                   "and stop (processor only, no weights).")
@click.option("--quiet", is_flag=True, help="No progress bar per epoch and no per-epoch loss lines (stderr).")
@writes("out")
def train_cmd(model, train_file, val_file, out, dry_run, quiet, **options):
    """Fine-tune a VLM on question records (LoRA by default); the best weights go to OUT/best, the loss per
    epoch to OUT/train_stats.json and OUT/train_curve.png."""
    from vlm_train.train import dry_run_training, train

    cfg = _train_config(model=model, train=train_file, val=val_file, out=out, **options)
    if dry_run:
        example = dry_run_training(cfg)
        click.echo(f"inputs ({example['id']}):\n{example['text']}\nlabels:\n{example['labels']}\n"
                   f"example: {out}/example.json")
        return
    stats = train(cfg, progress=not quiet)
    if os.environ.get("RANK", "0") == "0":  # one summary line under torchrun / accelerate launch
        click.echo(json.dumps({k: stats[k] for k in ("best_epoch", "best_val_perplexity", "wall_time_s")
                               if k in stats} | {"epochs": len(stats["epochs"]), "best": f"{out}/best",
                                                 "curve": f"{out}/train_curve.png"}))


def _train_config(**values):
    """TrainConfig from the options; an out-of-range option is one error line naming it."""
    from pydantic import ValidationError

    from blender_scenes.errors import InputError
    from blender_scenes.messages import option_error
    from vlm_train.train import TrainConfig

    try:
        return TrainConfig(**values)
    except ValidationError as err:
        raise InputError(option_error(err, TrainConfig)) from None


@click.command("export")
@click.argument("questions", nargs=-1, required=True, type=click.Path(), metavar="QUESTIONS.jsonl...|DATASET")
@click.option("--format", "fmt", required=True, type=click.Choice((*FORMATS, "hf", *HARNESS_FORMATS)),
              help="llamafactory / trl (training), vlmevalkit / lmms-eval (evaluation harnesses): QUESTIONS are "
                   "question files (*.jsonl); hf: the one argument is a dataset folder (made by `render`).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the exported files.")
@click.option("--push-to-hub", "repo", metavar="REPO",
              help="(--format hf) Upload the folder, once written, as the Hub dataset REPO (created if missing).")
@writes("out")
def export_cmd(questions, fmt, out, repo):
    """Write question files in LLaMA-Factory (sharegpt json + dataset_info.json) or TRL (messages jsonl) form,
    as a VLMEvalKit custom TSV or an lmms-eval task folder, or a rendered dataset as a Hugging Face `datasets`
    folder (--format hf: parquet with the images, a card).

    --format hf refuses a dataset whose audit fails (exit 2); with --push-to-hub, a failed upload is one
    error line and exit 1, the folder complete."""
    if fmt == "hf":
        return _export_hf(questions, out, repo)
    if repo:
        raise click.UsageError("--push-to-hub goes with --format hf")
    for q in questions:
        if os.path.isdir(q):
            raise click.BadParameter(f"File {q!r} is a directory.", param_hint="'QUESTIONS.jsonl...'")
    if fmt in HARNESS_FORMATS:
        from evaluation.export_harness import export_lmms_eval, export_vlmevalkit

        write = export_vlmevalkit if fmt == "vlmevalkit" else export_lmms_eval
        summary = write([Path(q) for q in questions], Path(out))
        click.echo(json.dumps(summary, indent=2, default=str))
        wrote(f"{len(summary['files'])} files in {summary['out']}")
        return
    from vlm_train.export import export

    for path in export(list(questions), fmt, out):
        click.echo(str(path))


def _export_hf(arguments, out, repo):
    from blender_scenes.errors import InputError
    from vlm_train.export_hub import PushError, export_hub, push

    if len(arguments) != 1:
        raise InputError(f"--format hf: {len(arguments)} arguments given (expected one dataset folder)")
    folder = export_hub(arguments[0], out, repo=repo, progress=real_stream(sys.stderr))
    click.echo(str(folder))
    if repo:
        try:
            click.echo(push(folder, repo))
        except PushError as err:
            click.echo(f"error: {err}", err=True)
            click.get_current_context().exit(1)


@click.command("tiny-model")
@click.argument("family", type=click.Choice(sorted(FAMILIES)))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="New (or empty) folder to write the checkpoint to.")
@click.option("--seed", default=0, show_default=True, help="Seed of the random weights.")
@writes("out")
def tiny_model_cmd(family, out, seed):
    """Write a tiny random-weight checkpoint of a VLM family (for tests and benches, not for results).

    It loads with AutoModelForImageTextToText / AutoProcessor like a downloaded model."""
    from vlm_train.tiny import write_tiny_model

    path = write_tiny_model(family, out, seed=seed)
    size = sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    click.echo(f"{family}: tiny checkpoint in {path} ({size / 1e6:.1f} MB)")


@click.command("merge-adapter")
@click.option("--model", required=True, help="The base model the adapter was trained on (folder or hub id).")
@click.option("--adapter", required=True, type=click.Path(file_okay=False), help="A peft (LoRA) adapter folder.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="New folder for the merged checkpoint.")
@trust_remote_code_option
@writes("out")
def merge_adapter_cmd(model, adapter, out, trust_remote_code):
    """Merge a LoRA adapter into its base model: one checkpoint (weights, processor, chat template) to serve
    without peft, e.g. with vLLM or `evaluate --model OUT`."""
    from vlm_train.merge import merge_adapter

    path = merge_adapter(model, adapter, out, trust_remote_code=trust_remote_code)
    click.echo(f"merged: {path} (a new checkpoint: {model} with {adapter} folded in; neither was changed)")


COMMANDS: list = [train_cmd, export_cmd, tiny_model_cmd, merge_adapter_cmd]
