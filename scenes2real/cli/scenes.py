"""Commands of the scene package: plan, render, merge."""
from __future__ import annotations

import json

import click
from rich.table import Table

from blender_scenes.errors import InputError

from .options import command_line, design_assets, design_source, split_choice, writes

# Library modules are imported inside the commands, so that `scenes2real --help` starts in ~0.7 s, not ~1.7 s.


@click.command("plan")
@design_source
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: counts per split and every scene (id, split, subset, objects with planned cells).")
@design_assets
def plan_cmd(config, preset, as_json, assets_dir):
    """Print counts per split and per factor level of a design, without rendering."""
    from rich.console import Console

    from blender_scenes.assets import display_name
    from blender_scenes.config import load_config_or_preset
    from blender_scenes.plan import plan, summarize

    cfg = load_config_or_preset(config, preset, assets_dir)
    scenes = plan(cfg)
    summary = summarize(scenes)
    display = {s: display_name(s, cfg.assets) for s in cfg.factors.shapes}   # what questions call each shape
    if as_json:
        click.echo(json.dumps({"design": cfg.name, "config_hash": cfg.digest(), "display": display,
                               "splits": summary, "scenes": [s.to_json() for s in scenes]}, indent=2))
    else:
        Console().print(plan_table(cfg.name, summary, display))


def plan_table(name: str, summary: dict, display: dict[str, str]) -> Table:
    """Counts per factor level (rows) and split (columns)."""
    table = Table(title=f"{name}: {sum(s['scenes'] for s in summary.values())} scenes")
    table.add_column("factor")
    table.add_column("level")
    for split in summary:
        table.add_column(split, justify="right")
    table.add_row("scenes", "", *[str(summary[s]["scenes"]) for s in summary])
    table.add_row("objects", "", *[str(summary[s]["objects"]) for s in summary])
    for factor in ("subset", "shape", "color", "size", "material", "area", "relation"):   # relation: its designs
        levels = list(dict.fromkeys(lv for s in summary.values() for lv in s.get(factor, {})))
        for lv in levels:
            level = display.get(lv, str(lv)) if factor == "shape" else str(lv)
            table.add_row(factor, level, *[str(summary[s].get(factor, {}).get(lv, 0)) for s in summary])
    return table


@click.command("render")
@design_source
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Dataset folder to write.")
@click.option("--scene", "scene_file", type=click.Path(dir_okay=False),
              help="Re-render one scene from its record DATASET/scenes/SPLIT/ID.json (no design needed).")
@click.option("--split", "splits", multiple=True, type=split_choice, help="Render only these splits (repeatable).")
@click.option("--limit", type=click.IntRange(min=1),
              help="Render the first N scenes of each split (recorded: --resume keeps it unless given a higher one).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Local worker processes, each importing bpy once.")
@click.option("--shard", metavar="K/N", help="Render only scenes with index % N == K (then `merge`).")
@click.option("--resume", is_flag=True, help="Finish an interrupted job; what is done is kept.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@design_assets
def render_cmd(config, preset, out, scene_file, splits, limit, workers, shard, resume, quiet, assets_dir):
    """Render a design: images, per-scene JSON, COCO instances, questions, manifest."""
    from blender_scenes.batch import job_limit, job_splits, parse_shard, render_scene_file, run, status_line
    from blender_scenes.config import load_config_or_preset
    from blender_scenes.lock import output_lock

    if scene_file:
        if config or preset:
            raise InputError("--scene: the scene record holds its design; give no CONFIG or --preset with it")
        with output_lock(out, command_line()):
            click.echo(f"rendered {scene_file} -> {render_scene_file(scene_file, out, assets_dir)}")
        return
    cfg = load_config_or_preset(config, preset, assets_dir)
    # a resumed folder keeps its recorded --split and --limit (read before the lock: the shards' key includes them)
    splits, split_note = job_splits(out, list(splits) or None, resume, cfg.digest())
    limit, note = job_limit(out, limit, resume, shard, cfg.digest())
    # the shards of one job (same design, --split, --limit and shard count) share the folder; nothing else does
    n = parse_shard(shard)[1]
    job = f"render-shards:{cfg.digest()}:{sorted(splits or [])}:{limit}:{n}" if n > 1 else None
    with output_lock(out, command_line(), job=job):
        for line in (split_note, note):
            if line:
                click.echo(line)
        stats = run(cfg, out, splits=splits, limit=limit, workers=workers, shard=shard,
                    resume=resume, progress=not quiet)
    for split, st in stats.status.items():
        click.echo(status_line(split, st))
    if not stats.status:
        click.echo(f"shard done; when every shard is, run: scenes2real merge {out}")
    click.echo(f"rendered {stats.scenes} scenes ({stats.skipped} already done) in {stats.seconds:.1f} s "
               f"-> {out}")


@click.command("merge")
@click.argument("dataset", type=click.Path(file_okay=False))
@design_assets
@writes("dataset")
def merge_cmd(dataset, assets_dir):
    """Build the split files (COCO, questions) of a dataset from its per-scene JSON (after shards)."""
    from blender_scenes.batch import merge_dataset, status_line

    for split, st in merge_dataset(dataset, assets_dir).items():
        click.echo(status_line(split, st))
    click.echo(f"merged -> {dataset} (annotations/, questions/, manifest.json)")


COMMANDS = [plan_cmd, render_cmd, merge_cmd]
