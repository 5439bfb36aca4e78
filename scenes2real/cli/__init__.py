"""`scenes2real`: one click group for every job, the top floor. Each module of this package holds the
commands of one area (`scenes`, `assets`, `audit`, `evaluation`, `training`); a command only parses its
options, calls one library function and prints. Bad input (`InputError`) becomes one `error:` line and
exit status 2 here, and nowhere else."""
from __future__ import annotations

import sys

import click

from blender_scenes.errors import InputError

from . import assets, audit, evaluation, scenes, training


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


for _module in (scenes, assets, audit, evaluation, training):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    cli(prog_name="scenes2real")


if __name__ == "__main__":
    sys.exit(main())
