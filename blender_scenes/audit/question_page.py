"""The page of a question-file audit, as blocks: headline, areas, answers per task, categories, findings and
pictures. Read from the report's JSON form; of the audit it imports only page, blocks, balance."""
from __future__ import annotations

from pathlib import Path

from .balance import fmt_ratio
from .blocks import Block, Heading, Paragraph, Table
from .page import findings_blocks, num, pct, pictures_blocks, tasks_blocks


def question_file_blocks(report: dict, figs: dict[str, bytes]) -> list[Block]:
    h = report["headline"]
    a = report["areas"]
    return [
        Heading(1, f"Audit of question file {Path(report['dataset']).name}"),
        Table(["figure", "value"], [
            ["questions", h["questions"]], ["distinct targets (image, box)", h["targets"]],
            ["answers verified (answer = label of its box)",
             f"{h['labels_verified']} / {h['labels_checked']} ({pct(h['labels_verified_share'])})"],
            ["records without an image size", report["without_image_size"]], ["failures", h["failures"]],
            ["sources", ", ".join(f"{k}: {v}" for k, v in report["sources"].items())],
            ["splits", ", ".join(f"{k}: {v}" for k, v in report["splits"].items())]]),
        Heading(2, "Areas of targets"),
        Table(["area", "targets"], [[k, v] for k, v in a["counts"].items()]),
        Paragraph(f"max/min ratio {fmt_ratio(a['ratio'])}, chi-square against uniform {num(a['chi2'])} "
                  f"(p = {num(a['p'])})."),
        *tasks_blocks(report["tasks"]),
        Heading(2, "Categories"),
        Table(["category", "targets"], [[k, v] for k, v in report["categories"].items()]),
        *findings_blocks(report),
        *pictures_blocks(figs),
    ]
