"""The audit command: `scenes2real audit`."""
from __future__ import annotations

import json
import sys

import click

from blender_scenes.images import DEFAULT_MAX_IMAGE_PIXELS

from .options import command_line, real_stream, wrote

# Library modules are imported inside the commands, so that `scenes2real --help` starts in ~0.7 s, not ~1.7 s.


@click.command("audit")
@click.argument("dataset", type=click.Path())
@click.option("--out", type=click.Path(file_okay=False),
              help="Report folder (default DATASET/audit/, or FILE-audit/ beside a question file).")
@click.option("--strict", is_flag=True, help="Exit 1 if a balance, integrity, label or split check fails.")
@click.option("--json", "as_json", is_flag=True, help="Print the headline figures as JSON.")
@click.option("--max-ratio", type=click.FloatRange(min=1.0),
              help="Largest max/min count ratio allowed (default: 1.0 exhaustive, within one balanced).")
@click.option("--compare", type=click.Path(dir_okay=False, exists=True),
              help="A question file (e.g. COCO questions) whose target areas are shown beside the dataset's.")
@click.option("--assets", "assets_dir", type=click.Path(file_okay=False),
              help="The user asset folder of the design, if it moved [default: the stored one, else "
                   "$SCENES2REAL_ASSETS].")
@click.option("--max-image-pixels", type=click.IntRange(min=1), default=None,
              help="Question files: an image with more pixels (read from its header) is an integrity finding "
                   f"[default: {DEFAULT_MAX_IMAGE_PIXELS}].")
@click.option("--quiet", is_flag=True, help="No progress bars (on stderr, one per phase).")
def audit_cmd(dataset, out, strict, as_json, max_ratio, compare, assets_dir, max_image_pixels, quiet):
    """Recount a rendered dataset (or a question file) from disk: balance, split hygiene, integrity and
    labels verified from pixels; writes report.json, report.md and a self-contained report.html."""
    from blender_scenes.audit.run import audit_path, report_folder, strict_lines
    from blender_scenes.lock import output_lock

    with output_lock(report_folder(dataset, out), command_line()):
        limit = {} if max_image_pixels is None else {"max_image_pixels": max_image_pixels}   # else the default
        report = audit_path(dataset, out, max_ratio=max_ratio, compare=compare, assets=assets_dir,
                            progress=not quiet and real_stream(sys.stderr), **limit)
    failed = strict and report["headline"]["failures"] > 0
    lines = strict_lines(report) if strict else []
    if strict and report.get("partial_splits"):
        lines.append(f"note: partial split(s) {', '.join(report['partial_splits'])}: their balance is "
                     "informational and does not fail --strict")
    for line in lines:
        click.echo(line, err=as_json)   # first lines of stdout; stderr when stdout holds JSON
    if as_json:
        click.echo(json.dumps({"report_dir": report["report_dir"], "seconds": report["seconds"],
                               "passed": not failed, **report["headline"]}, indent=2))
        wrote(f"{report['report_dir']}/report.json, report.md and report.html")
    else:
        h = report["headline"]
        share = h.get("labels_verified_share")
        # the headline tells the truth with or without --strict (which only sets the exit status)
        word = f"FAIL ({h['failures']} failed)" if h["failures"] else "ok"
        click.echo(f"{word}: {h.get('scenes', h.get('questions'))} "
                   f"{'scenes' if 'scenes' in h else 'questions'}, labels verified "
                   f"{h['labels_verified']}/{h.get('labels_checked', h['targets'])} ({100 * share:.1f}%)"
                   if share is not None else
                   f"{word}: nothing to verify")
        click.echo(f"  failures: {h['failures']}, informational: {h['informational']}; report: "
                   f"{report['report_dir']}/report.html ({report['seconds']:.1f} s)")
    if failed:
        sys.exit(1)


COMMANDS = [audit_cmd]
