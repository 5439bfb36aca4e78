"""The viewer command: `scenes2real view DATASET|QUESTIONS|RUN --out DIR`."""
from __future__ import annotations

import click

from .options import writes

# Library modules are imported inside the command, so that `scenes2real --help` stays fast.


@click.command("view")
@click.argument("source", type=click.Path())
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for the viewer (new, empty, or an earlier viewer: it is replaced whole).")
@click.option("--copy-images", is_flag=True,
              help="Copy the images into OUT/images, so the folder can be moved or shared [default: the page "
                   "names them by paths relative to OUT].")
@click.option("--questions", "questions_path", type=click.Path(dir_okay=False),
              help="A run's question file, where it is not the one its run.json names (moved).")
@writes("out")
def view_cmd(source, out, copy_images, questions_path):
    """Write a static HTML viewer (no server; opens from file://, works offline) of a rendered dataset folder,
    a question file (*.jsonl) or an evaluation run folder: each image with its boxes and masks, the question,
    options and answer (for a run: the model's answer and whether it is correct), filters and pages."""
    from evaluation.viewer import build_viewer

    summary = build_viewer(source, out, questions=questions_path, copy_images=copy_images, progress=True)
    click.echo(f"view: {summary['index']} ({summary['items']} items; open it in a browser)")


COMMANDS = [view_cmd]
