"""CLI commands of the training package (registered by scenes2real.cli)."""
from __future__ import annotations

import click

from .families import FAMILIES


@click.command("tiny-model")
@click.argument("family", type=click.Choice(sorted(FAMILIES)))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder to write the checkpoint to.")
@click.option("--seed", default=0, show_default=True, help="Seed of the random weights.")
def tiny_model_cmd(family, out, seed):
    """Write a tiny random-weight checkpoint of a VLM family (for tests and benches, not for results).

    It loads with AutoModelForImageTextToText / AutoProcessor like a downloaded model."""
    from .tiny import write_tiny_model

    path = write_tiny_model(family, out, seed=seed)
    size = sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    click.echo(f"{family}: tiny checkpoint in {path} ({size / 1e6:.1f} MB)")


COMMANDS: list = [tiny_model_cmd]
