"""The report files: report.json (everything), report.md (tables, pictures as PNG files beside it) and a
self-contained report.html (pictures inlined as base64 data URIs). Both texts come from one list of blocks."""
from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

from ..files import atomic_write_bytes, atomic_write_text
from .balance import fmt_bound, fmt_ratio

FINDINGS_SHOWN = 60   # per kind, in md/html; report.json holds all

CAPTIONS = {
    "areas": "Targets per area, one 3x3 map per split (area of each target's mask box).",
    "cells": "Targets per placement cell (the planned grid cell).",
    "factors": "Targets per factor level, per split.",
    "options": "Position of the correct option in the shuffled options, per task.",
    "visibility": "Visible share of every object (1.0 = unoccluded).",
    "samples": "Sample images with every object's mask box (green: target, orange: others) and the target's label.",
    "compare": "Area of targets: synthetic splits beside the compared question file.",
}


def jsonable(x):
    """inf -> "inf", NaN -> None, sets -> sorted lists, tuples -> lists (strict JSON)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else ("inf" if x > 0 else None)
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, set):
        return sorted(jsonable(v) for v in x)
    return x


def _pct(x):
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(x, digits=3):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) < 1e-3 and x else f"{x:.{digits}f}".rstrip("0").rstrip(".")
    return str(x)


def blocks_of(report: dict, figs: dict) -> list[tuple]:
    b: list[tuple] = []
    h = report["headline"]
    if report["kind"] == "questions":
        b.append(("h", 1, f"Audit of question file {Path(report['dataset']).name}"))
        b.append(("table", ["figure", "value"], [
            ["questions", h["questions"]], ["distinct targets (image, box)", h["targets"]],
            ["answers verified (answer = label of its box)",
             f"{h['labels_verified']} / {h['labels_checked']} ({_pct(h['labels_verified_share'])})"],
            ["records without an image size", report["without_image_size"]], ["failures", h["failures"]],
            ["sources", ", ".join(f"{k}: {v}" for k, v in report["sources"].items())],
            ["splits", ", ".join(f"{k}: {v}" for k, v in report["splits"].items())]]))
        a = report["areas"]
        b.append(("h", 2, "Areas of targets"))
        b.append(("table", ["area", "targets"], [[k, v] for k, v in a["counts"].items()]))
        b.append(("p", f"max/min ratio {fmt_ratio(a['ratio'])}, chi-square against uniform {_num(a['chi2'])} "
                       f"(p = {_num(a['p'])})."))
        b += _tasks_blocks(report["tasks"])
        b.append(("h", 2, "Categories"))
        b.append(("table", ["category", "targets"], [[k, v] for k, v in report["categories"].items()]))
        b += _findings_blocks(report)
        b += _pictures_blocks(figs)
        return b
    b.append(("h", 1, f"Audit of {report['dataset']}"))
    b.append(("p", f"Design {report['design']} ({report['design_kind']}"
                   + (f", every combination {report['repeat'] * report['variations']}x"
                      if report['design_kind'] == 'exhaustive' else "")
                   + f"), {report['style']} style, {report['image_size'][0]}x{report['image_size'][1]} images, "
                   f"config hash {report['config_hash']}. Held-out factors: {', '.join(report['heldout']) or 'none'}. "
                   f"Everything below is recounted from the files on disk."))
    if report["partial_splits"]:
        b.append(("p", f"Partial splits (job limit {report['job'].get('limit')}): "
                       f"{', '.join(report['partial_splits'])}. Their balance is reported only, never enforced."))
    share = h["labels_verified_share"]
    b.append(("table", ["headline", "value"], [
        ["scenes read", h["scenes"]], ["images decoded", h["images"]],
        ["labels verified from pixels", f"{h['labels_verified']} / {h['targets']} ({_pct(share)})"],
        ["worst enforced balance ratio", fmt_ratio(h["worst_enforced_ratio"])],
        ["held-out leaks", h["heldout_leaks"]], ["groups of identical images", h["identical_image_groups"]],
        ["failures (--strict)",
         f"{h['failures']} " + ", ".join(f"{k}: {v}" for k, v in h["failures_by_kind"].items() if v)],
        ["informational findings", h["informational"]]]))
    if report.get("compare"):
        c = report["compare"]
        b.append(("h", 2, f"Compared with {Path(c['file']).name}"))
        b.append(("table", ["area", "dataset targets", f"{Path(c['file']).name} targets"],
                  [[a, sum(s["counts"]["targets"]["area"]["counts"].get(a, 0) for s in report["splits"].values()), n]
                   for a, n in c["areas"]["counts"].items()]))
        b.append(("p", f"{c['targets']} targets in {c['questions']} questions; area ratio "
                       f"{fmt_ratio(c['areas']['ratio'])}, chi-square against uniform p = {_num(c['areas']['p'])}; "
                       f"answers equal to the label of their box: "
                       f"{_pct(c['labels_verified_share'])}. The area maps above show it as the last panel."))
    b += _findings_blocks(report)
    b.append(("h", 2, "Balance"))
    b.append(("p", _balance_note(report)))
    b.append(("table", ["scope", "what", "rule", "min", "max", "ratio", "bound", "chi-square p", "verdict"],
              [[c["scope"], c["what"], c["rule"], c["min"], c["max"], fmt_ratio(c["ratio"]), fmt_bound(c["bound"]),
                _num(c["p"]), _verdict(c)] for c in report["balance"]]))
    b += _pictures_blocks({k: v for k, v in figs.items() if k in ("areas", "cells", "factors", "options")})
    for split, s in report["splits"].items():
        b.append(("h", 2, f"Split {split}"))
        lab = s["labels"]
        b.append(("table", ["figure", "value"], [
            ["scenes planned by the job / in the design", f"{s['planned']} / {s['planned_in_design']}"
             + (" (partial)" if s["partial"] else "")],
            ["manifest status (as recorded, not trusted)", s["manifest_status"] or "-"],
            ["scene files / read", f"{s['scene_files']} / {s['scenes_read']}"],
            ["images found / decoded", f"{s['images_found']} / {s['images_decoded']}"],
            ["question records", s["questions"]],
            ["targets verified from pixels", f"{lab['verified']} / {lab['targets']} ({_pct(lab['share'])})"],
            ["objects with mask = box = pixels = area", f"{lab['objects_verified']} / {lab['objects']}"],
            ["largest share of background colour under a mask", _pct(lab["background_share_max"])],
            ["visible share: min / mean",
             f"{_num(s['visibility']['min_share'])} / {_num(s['visibility']['mean_share'])}"],
            ["smallest object (visible pixels)", s["visibility"]["min_pixels"]]]))
        for who in ("targets", "objects"):
            b.append(("h", 3, f"{split}: counts of {who}"))
            for k, v in s["counts"][who].items():
                if k == "cell":
                    b.append(("p", f"{who} per cell: {v['cells']} cells, min {v['min']}, max {v['max']}, "
                                   f"ratio {fmt_ratio(v['ratio'])}, chi-square p {_num(v['p'])}"))
                    continue
                b.append(("table", [k, *v["counts"].keys(), "ratio", "chi-square p"],
                          [["count", *v["counts"].values(), fmt_ratio(v["ratio"]), _num(v["p"])]]))
        b.append(("h", 3, f"{split}: area against each factor (targets)"))
        for name, t in s["counts"]["tables"].items():
            b.append(("table", [name, *t["cols"]], [[r, *row] for r, row in zip(t["rows"], t["counts"])]))
            b.append(("p", f"{name}: ratio {fmt_ratio(t['ratio'])}, chi-square p {_num(t['p'])}"
                           + (f"; {len(t['empty'])} empty cells: {', '.join(t['empty'][:12])}"
                              + (" ..." if len(t["empty"]) > 12 else "") if t["empty"] else "; no empty cell")))
        b += _tasks_blocks(s["answers"], prefix=f"{split}: ")
        if s.get("fill"):
            b.append(("h", 3, f"{split}: how much of its box each shape's mask fills"))
            b.append(("p", "Share of the mask box covered by the mask, over all objects (a square fills ~1, a circle "
                           "~0.79, a triangle ~0.5, a plus ~0.56, a star ~0.4): a shape drawn wrong stands out."))
            b.append(("table", ["shape", "objects", "mean", "min", "max"],
                      [[k, v["objects"], _num(v["mean"]), _num(v["min"]), _num(v["max"])]
                       for k, v in s["fill"].items()]))
    hy = report["hygiene"]
    b.append(("h", 2, "Split hygiene"))
    b.append(("p", f"Held-out factors: {', '.join(hy['heldout_factors']) or 'none'}; "
                   f"{len(hy['heldout_combinations'])} test combinations; {hy['leaks']} leaks into train/val. "
                   f"{len(hy['duplicate_groups'])} groups of identical images (same decoded pixels)."))
    if hy["duplicate_groups"]:
        b.append(("table", ["splits", "images"], [[", ".join(g["splits"]), ", ".join(g["images"][:6])]
                                                  for g in hy["duplicate_groups"][:50]]))
    b += _pictures_blocks({k: v for k, v in figs.items() if k not in ("areas", "cells", "factors", "options")})
    return b


def _balance_note(report: dict) -> str:
    if report["max_ratio"] is not None:
        return f"Every enforced ratio is held to --max-ratio {report['max_ratio']}."
    if report["design_kind"] == "exhaustive":
        return ("Exhaustive design: where a split holds a whole subset, every combination occurs exactly "
                f"{report['repeat'] * report['variations']}x, so every ratio must be 1.0; splits that divide "
                "a subset keep each level within one of its share (bound (m+1)/m, m = floor of the mean count; "
                "counted in planned targets when each is rendered with several distractor variations).")
    return ("Balanced design: every level (and, over the whole design, every pair of levels) is within one of equal, "
            "so each ratio is at most (m+1)/m with m the floor of the mean count: close to 1 for large counts.")


def _verdict(c: dict) -> str:
    if c["ok"] is None:
        return "reported"
    if c["ok"]:
        return "ok"
    return "FAIL" if c["strict"] else "off (informational)"


def _tasks_blocks(tasks: dict, prefix: str = "") -> list[tuple]:
    b = [("h", 3, f"{prefix}answers per task")]
    for task, v in tasks.items():
        b.append(("table", [f"{task} answer", *v["answers"].keys(), "ratio"],
                  [["count", *v["answers"].values(), fmt_ratio(v["ratio"])]]))
        if v.get("option_index"):
            f = v["option_index_figures"]
            b.append(("table", [f"{task}: correct option index", *v["option_index"].keys(), "ratio", "chi-square p"],
                      [["count", *v["option_index"].values(), fmt_ratio(f["ratio"]), _num(f["p"])]]))
    return b


def _findings_blocks(report: dict) -> list[tuple]:
    fs = report["findings"]
    if not fs:
        return [("h", 2, "Findings"), ("p", "None: every check passed.")]
    b = [("h", 2, "Findings")]
    by: dict[str, list] = {}
    for f in fs:
        by.setdefault(f["kind"], []).append(f)
    for kind, items in by.items():
        strict = sum(f["strict"] for f in items)
        b.append(("h", 3, f"{kind}: {len(items)} ({strict} fail --strict)"))
        lines = [("" if f["strict"] else "(informational) ") + (f"{f['file']}: " if f["file"] else "")
                 + f["message"] for f in items[:FINDINGS_SHOWN]]
        if len(items) > FINDINGS_SHOWN:
            lines.append(f"... and {len(items) - FINDINGS_SHOWN} more (report.json lists all)")
        b.append(("list", lines))
    return b


def _pictures_blocks(figs: dict) -> list[tuple]:
    return [("img", name, CAPTIONS.get(name, name)) for name in figs]


# ------------------------------------------------------------------------------------------ renderers

def to_markdown(blocks: list[tuple]) -> str:
    out = []
    for blk in blocks:
        if blk[0] == "h":
            out.append(f"{'#' * blk[1]} {blk[2]}\n")
        elif blk[0] == "p":
            out.append(f"{blk[1]}\n")
        elif blk[0] == "list":
            out.append("\n".join(f"- {line}" for line in blk[1]) + "\n")
        elif blk[0] == "table":
            head, rows = blk[1], blk[2]
            cell = lambda v: str(v).replace("|", "\\|")  # noqa: E731
            out.append("\n".join(["| " + " | ".join(cell(h) for h in head) + " |",
                                  "|" + "---|" * len(head)] +
                                 ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]) + "\n")
        elif blk[0] == "img":
            out.append(f"![{blk[2]}](figures/{blk[1]}.png)\n\n*{blk[2]}*\n")
    return "\n".join(out)


STYLE = """body{font-family:system-ui,sans-serif;max-width:1180px;margin:1.5em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px;
text-align:left}th{background:#f2f2f2}td.n{text-align:right;white-space:nowrap}
img{max-width:100%;border:1px solid #ddd}figure{margin:1em 0}.FAIL{color:#b00;font-weight:bold}
.ok{color:#070}li{font-size:13px}"""


def to_html(blocks: list[tuple], figs: dict, title: str) -> str:
    e = html.escape
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{STYLE}</style>"
           "</head><body>"]
    for blk in blocks:
        if blk[0] == "h":
            out.append(f"<h{blk[1]}>{e(blk[2])}</h{blk[1]}>")
        elif blk[0] == "p":
            out.append(f"<p>{e(blk[1])}</p>")
        elif blk[0] == "list":
            out.append("<ul>" + "".join(f"<li>{e(x)}</li>" for x in blk[1]) + "</ul>")
        elif blk[0] == "table":
            head = "".join(f"<th>{e(str(h))}</th>" for h in blk[1])
            rows = "".join("<tr>" + "".join(f"<td class='{_cls(v)}'>{e(str(v))}</td>" for v in r) + "</tr>"
                           for r in blk[2])
            out.append(f"<table><tr>{head}</tr>{rows}</table>")
        elif blk[0] == "img":
            data = base64.b64encode(figs[blk[1]]).decode("ascii")
            out.append(f"<figure><img alt='{e(blk[1])}' src='data:image/png;base64,{data}'>"
                       f"<figcaption>{e(blk[2])}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out)


def _cls(v) -> str:
    """Numbers right-aligned, words left-aligned, verdicts coloured."""
    if str(v) in ("FAIL", "ok"):
        return f"n {v}"
    text = str(v).replace(".", "", 1).replace("%", "").replace(" / ", "").replace("(", "").replace(")", "")
    return "n" if text.replace(" ", "").isdigit() or str(v) in ("-", "inf (empty cell)") else "t"


def write_report(report: dict, figs: dict[str, bytes], out: str | Path) -> None:
    out = Path(out)
    blocks = blocks_of(report, figs)
    for name, png in figs.items():
        atomic_write_bytes(out / "figures" / f"{name}.png", png)
    atomic_write_text(out / "report.json", json.dumps(jsonable(report), indent=1, allow_nan=False) + "\n")
    atomic_write_text(out / "report.md", to_markdown(blocks))
    atomic_write_text(out / "report.html", to_html(blocks, figs, f"audit: {report['dataset']}"))
