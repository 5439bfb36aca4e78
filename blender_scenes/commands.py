"""CLI commands of the scene package: plan, render, merge (registered by scenes2real.cli)."""
from __future__ import annotations

import json

import click

design_source = [
    click.argument("config", required=False, type=click.Path(dir_okay=False)),
    click.option("--preset", help="A shipped design: civet, civet-distractors, clevr, solid, demo."),
]


def with_design(f):
    for deco in reversed(design_source):
        f = deco(f)
    return f


@click.command("plan")
@with_design
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def plan_cmd(config, preset, as_json):
    """Print counts per split and per factor level of a design, without rendering."""
    from .config import load_config_or_preset
    from .plan import plan, summarize

    cfg = load_config_or_preset(config, preset)
    summary = summarize(plan(cfg))
    if as_json:
        click.echo(json.dumps({"design": cfg.name, "config_hash": cfg.digest(), "splits": summary}, indent=2))
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
            table.add_row(factor, str(lv), *[str(summary[s][factor].get(lv, 0)) for s in summary])
    Console().print(table)


COMMANDS = [plan_cmd]
