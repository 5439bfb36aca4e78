"""CLI commands of the scene package: plan, render, merge (registered by scenes2real.cli)."""
from __future__ import annotations

import json

import click

from .errors import InputError

from .asset_commands import assets_group
from .audit.commands import audit_cmd

assets_option = click.option(
    "--assets", "assets_dir", type=click.Path(file_okay=False),
    help="A user asset folder (with manifest.toml), searched before the shipped library [default: the "
         "design's own `assets` key, else $SCENES2REAL_ASSETS].")

design_source = [
    click.argument("config", required=False, type=click.Path(dir_okay=False)),
    click.option("--preset", help="A shipped design: civet, civet-distractors, clevr, solid, objects, demo."),
]


def with_design(f):
    for deco in reversed(design_source):
        f = deco(f)
    return f


@click.command("plan")
@with_design
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: counts per split and every scene (id, split, subset, objects with planned cells).")
@assets_option
def plan_cmd(config, preset, as_json, assets_dir):
    """Print counts per split and per factor level of a design, without rendering."""
    from .config import load_config_or_preset
    from .plan import plan, summarize

    cfg = load_config_or_preset(config, preset, assets_dir)
    from .assets import display_name

    scenes = plan(cfg)
    summary = summarize(scenes)
    display = {s: display_name(s, cfg.assets) for s in cfg.factors.shapes}   # what questions call each shape
    if as_json:
        click.echo(json.dumps({"design": cfg.name, "config_hash": cfg.digest(), "display": display,
                               "splits": summary, "scenes": [s.to_json() for s in scenes]}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{cfg.name}: {sum(s['scenes'] for s in summary.values())} scenes")
    table.add_column("factor")
    table.add_column("level")
    for split in summary:
        table.add_column(split, justify="right")
    table.add_row("scenes", "", *[str(summary[s]["scenes"]) for s in summary])
    table.add_row("objects", "", *[str(summary[s]["objects"]) for s in summary])
    for factor in ("subset", "shape", "color", "size", "material", "area"):
        levels = list(dict.fromkeys(lv for s in summary.values() for lv in s[factor]))
        for lv in levels:
            name = display.get(lv, str(lv)) if factor == "shape" else str(lv)
            table.add_row(factor, name, *[str(summary[s][factor].get(lv, 0)) for s in summary])
    Console().print(table)


@click.command("render")
@with_design
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Dataset folder to write.")
@click.option("--scene", "scene_file", type=click.Path(dir_okay=False),
              help="Re-render one scene from its record DATASET/scenes/SPLIT/ID.json (no design needed).")
@click.option("--split", "splits", multiple=True, type=click.Choice(["train", "val", "test"]),
              help="Render only these splits (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), help="Render the first N scenes of each split.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Local worker processes, each importing bpy once.")
@click.option("--shard", metavar="K/N", help="Render only scenes with index % N == K (then `merge`).")
@click.option("--resume", is_flag=True, help="Finish an interrupted job; what is done is kept.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@assets_option
def render_cmd(config, preset, out, scene_file, splits, limit, workers, shard, resume, quiet, assets_dir):
    """Render a design: images, per-scene JSON, COCO instances, questions, manifest."""
    from .batch import render_scene_file, run
    from .config import load_config_or_preset

    if scene_file:
        if config or preset:
            raise InputError("--scene: the scene record holds its design; give no CONFIG or --preset with it")
        click.echo(f"rendered {scene_file} -> {render_scene_file(scene_file, out, assets_dir)}")
        return
    cfg = load_config_or_preset(config, preset, assets_dir)
    stats = run(cfg, out, splits=list(splits) or None, limit=limit, workers=workers, shard=shard,
                resume=resume, progress=not quiet)
    click.echo(f"rendered {stats.scenes} scenes ({stats.skipped} already done) in {stats.seconds:.1f} s "
               f"-> {out}")
    for split, st in stats.status.items():
        click.echo(f"  {split}: {st['rendered']}/{st['planned']} scenes ({st['status']})")
    if not stats.status:
        click.echo(f"  shard done; when every shard is, run: scenes2real merge {out}")


@click.command("merge")
@click.argument("dataset", type=click.Path(file_okay=False))
@assets_option
def merge_cmd(dataset, assets_dir):
    """Build the split files (COCO, questions) of a dataset from its per-scene JSON (after shards)."""
    from .batch import merge_dataset

    for split, st in merge_dataset(dataset, assets_dir).items():
        click.echo(f"{split}: {st['rendered']}/{st['planned']} scenes ({st['status']})")


COMMANDS = [plan_cmd, render_cmd, merge_cmd, audit_cmd, assets_group]
