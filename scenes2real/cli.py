"""`scenes2real`: one click group for every job. Each package keeps its commands in its own
`commands.py` (a thin shell over one function each); this file only gathers them and turns bad
input into a one-line error and exit status 2."""
from __future__ import annotations

import sys

import click

from blender_scenes.errors import InputError


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except InputError as err:
            click.echo(f"error: {err}", err=True)
            ctx.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="scenes2real")
def cli() -> None:
    """Balanced synthetic scenes for VLM fine-tuning, and the measurement of transfer to real photos."""


def _register() -> None:
    from blender_scenes.commands import COMMANDS as scene_commands
    from evaluation.commands import COMMANDS as evaluation_commands
    from vlm_train.commands import COMMANDS as train_commands

    for command in (*scene_commands, *evaluation_commands, *train_commands):
        cli.add_command(command)


_register()


def main() -> None:
    cli(prog_name="scenes2real")


if __name__ == "__main__":
    sys.exit(main())
