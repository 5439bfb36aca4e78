"""Options shared by several commands, with choices read from the library's own constants."""
from __future__ import annotations

import click

from blender_scenes.config import SPLITS, preset_names

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

dtype_option = click.option("--dtype", type=click.Choice(DTYPES), default="auto", show_default=True,
                            help="auto: bf16 on a GPU that has it, else fp32.")
