"""Options shared by several commands, with choices read from the library's own constants."""
from __future__ import annotations

import functools
import sys

import click

from blender_scenes.config import SPLITS, preset_names
from blender_scenes.images import DEFAULT_MAX_IMAGE_PIXELS

DTYPES = ("auto", "bf16", "fp32")


def design_source(f):
    """CONFIG argument or --preset NAME: the design of `plan` and `render`."""
    f = click.option("--preset", help=f"A shipped design: {', '.join(preset_names())}.")(f)
    return click.argument("config", required=False, type=click.Path(dir_okay=False))(f)


design_assets = click.option(
    "--assets", "assets_dir", type=click.Path(file_okay=False),
    help="A user asset folder (with manifest.toml), searched before the shipped library [default: the "
         "design's own `assets` key, else $SCENES2REAL_ASSETS].")

split_choice = click.Choice(SPLITS)

trust_remote_code_option = click.option(
    "--trust-remote-code", is_flag=True,
    help="Let the checkpoint run its own Python files (config.json auto_map); only for a model you trust.")

max_image_pixels_option = click.option(
    "--max-image-pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_IMAGE_PIXELS, show_default=True,
    help="Refuse an image with more pixels (read from its header, before it is decoded).")

dtype_option = click.option("--dtype", type=click.Choice(DTYPES), default="auto", show_default=True,
                            help="auto: bf16 on a GPU that has it, else fp32.")


def writes(param: str, job=None):
    """Hold the output lock (`blender_scenes.lock`) on the path given as `param` while the command runs; the
    ranks of one torchrun / accelerate job share it, and so do the processes `job(kwargs)` gives one key."""
    def decorate(command):
        @functools.wraps(command)
        def locked(*args, **kwargs):
            from blender_scenes.lock import distributed_job, output_lock

            target = kwargs.get(param)
            if target is None:
                return command(*args, **kwargs)
            key = (job(kwargs) if job else None) or distributed_job()
            with output_lock(target, command_line(), job=key):
                return command(*args, **kwargs)
        return locked
    return decorate


def command_line() -> str:
    """How this process was started, as a lock holder records it."""
    return " ".join(["scenes2real", *sys.argv[1:]])[:500]


def wrote(what: str) -> None:
    """The last line of a command whose stdout is data (JSON, a report): where it wrote, on stderr."""
    click.echo(f"wrote {what}", err=True)


def real_stream(stream) -> bool:
    """Whether `stream` is a file descriptor (a terminal, a log file, a pipe), where the progress bars go. An
    in-memory stream means a program reads the command's output in-process (click's CliRunner): it gets the
    report alone, as --quiet would give it."""
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):   # io.UnsupportedOperation is an OSError and a ValueError
        return False
    return True
