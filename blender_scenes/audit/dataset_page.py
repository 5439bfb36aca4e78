"""The page of a dataset audit, as blocks, one function per section: the design, the headline, a compared
question file, findings, balance, each split (files, labels, counts, area tables, answers, mask fill) and split
hygiene. Read from the report's JSON form; of the audit it imports only page, blocks, balance."""
from __future__ import annotations

from pathlib import Path

from .balance import fmt_bound, fmt_ratio
from .blocks import Block, Heading, Paragraph, Table
from .page import findings_blocks, num, pct, pictures_blocks, tasks_blocks

TOP_PICTURES = ("areas", "cells", "factors", "options")   # shown with the balance table; the others at the end


def dataset_blocks(report: dict, figs: dict[str, bytes]) -> list[Block]:
    return [
        *_intro_blocks(report),
        _headline_table(report["headline"]),
        *_compare_blocks(report),
        *findings_blocks(report),
        *_balance_blocks(report),
        *pictures_blocks({k: v for k, v in figs.items() if k in TOP_PICTURES}),
        *(b for split, s in report["splits"].items() for b in _split_blocks(split, s)),
        *_hygiene_blocks(report["hygiene"]),
        *pictures_blocks({k: v for k, v in figs.items() if k not in TOP_PICTURES}),
    ]


def _intro_blocks(report: dict) -> list[Block]:
    every = (f", every combination {report['repeat'] * report['variations']}x"
             if report["design_kind"] == "exhaustive" else "")
    out: list[Block] = [
        Heading(1, f"Audit of {report['dataset']}"),
        Paragraph(f"Design {report['design']} ({report['design_kind']}{every}), {report['style']} style, "
                  f"{report['image_size'][0]}x{report['image_size'][1]} images, config hash {report['config_hash']}. "
                  f"Held-out factors: {', '.join(report['heldout']) or 'none'}. "
                  f"Everything below is recounted from the files on disk.")]
    if report["partial_splits"]:
        out.append(Paragraph(f"Partial splits (job limit {report['job'].get('limit')}): "
                             f"{', '.join(report['partial_splits'])}. Their balance is reported only, never "
                             f"enforced."))
    return out


def _headline_table(h: dict) -> Table:
    return Table(["headline", "value"], [
        ["scenes read", h["scenes"]], ["images decoded", h["images"]],
        ["labels verified from pixels", f"{h['labels_verified']} / {h['targets']} ({pct(h['labels_verified_share'])})"],
        ["worst enforced balance ratio", fmt_ratio(h["worst_enforced_ratio"])],
        ["held-out leaks", h["heldout_leaks"]], ["groups of identical images", h["identical_image_groups"]],
        ["failures (--strict)",
         f"{h['failures']} " + ", ".join(f"{k}: {v}" for k, v in h["failures_by_kind"].items() if v)],
        ["informational findings", h["informational"]]])


def _compare_blocks(report: dict) -> list[Block]:
    """The compared question file's target areas beside the dataset's."""
    c = report.get("compare")
    if not c:
        return []
    name = Path(c["file"]).name
    dataset = {a: sum(s["counts"]["targets"]["area"]["counts"].get(a, 0) for s in report["splits"].values())
               for a in c["areas"]["counts"]}
    return [
        Heading(2, f"Compared with {name}"),
        Table(["area", "dataset targets", f"{name} targets"],
              [[a, dataset[a], n] for a, n in c["areas"]["counts"].items()]),
        Paragraph(f"{c['targets']} targets in {c['questions']} questions; area ratio "
                  f"{fmt_ratio(c['areas']['ratio'])}, chi-square against uniform p = {num(c['areas']['p'])}; "
                  f"answers equal to the label of their box: "
                  f"{pct(c['labels_verified_share'])}. The area maps above show it as the last panel."),
    ]


def _balance_blocks(report: dict) -> list[Block]:
    return [
        Heading(2, "Balance"),
        Paragraph(_balance_note(report)),
        Table(["scope", "what", "rule", "min", "max", "ratio", "bound", "chi-square p", "verdict"],
              [[c["scope"], c["what"], c["rule"], c["min"], c["max"], fmt_ratio(c["ratio"]), fmt_bound(c["bound"]),
                num(c["p"]), _verdict(c)] for c in report["balance"]]),
    ]


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


def _split_blocks(split: str, s: dict) -> list[Block]:
    return [
        Heading(2, f"Split {split}"),
        _split_table(s),
        *_counts_blocks(split, s["counts"]),
        *_area_tables_blocks(split, s["counts"]["tables"]),
        *tasks_blocks(s["answers"], prefix=f"{split}: "),
        *_fill_blocks(split, s.get("fill")),
    ]


def _split_table(s: dict) -> Table:
    lab = s["labels"]
    return Table(["figure", "value"], [
        ["scenes planned by the job / in the design", f"{s['planned']} / {s['planned_in_design']}"
         + (" (partial)" if s["partial"] else "")],
        ["manifest status (as recorded, not trusted)", s["manifest_status"] or "-"],
        ["scene files / read", f"{s['scene_files']} / {s['scenes_read']}"],
        ["images found / decoded", f"{s['images_found']} / {s['images_decoded']}"],
        ["question records", s["questions"]],
        ["targets verified from pixels", f"{lab['verified']} / {lab['targets']} ({pct(lab['share'])})"],
        ["objects with mask = box = pixels = area", f"{lab['objects_verified']} / {lab['objects']}"],
        ["largest share of background colour under a mask", pct(lab["background_share_max"])],
        ["visible share: min / mean", f"{num(s['visibility']['min_share'])} / {num(s['visibility']['mean_share'])}"],
        ["smallest object (visible pixels)", s["visibility"]["min_pixels"]]])


def _counts_blocks(split: str, counts: dict) -> list[Block]:
    """Counts per level of each factor, for targets and for all objects; cells as one line."""
    out: list[Block] = []
    for who in ("targets", "objects"):
        out.append(Heading(3, f"{split}: counts of {who}"))
        for k, v in counts[who].items():
            if k == "cell":
                out.append(Paragraph(f"{who} per cell: {v['cells']} cells, min {v['min']}, max {v['max']}, "
                                     f"ratio {fmt_ratio(v['ratio'])}, chi-square p {num(v['p'])}"))
            else:
                out.append(Table([k, *v["counts"].keys(), "ratio", "chi-square p"],
                                 [["count", *v["counts"].values(), fmt_ratio(v["ratio"]), num(v["p"])]]))
    return out


def _area_tables_blocks(split: str, tables: dict) -> list[Block]:
    out: list[Block] = [Heading(3, f"{split}: area against each factor (targets)")]
    for name, t in tables.items():
        empty = (f"; {len(t['empty'])} empty cells: {', '.join(t['empty'][:12])}"
                 + (" ..." if len(t["empty"]) > 12 else "") if t["empty"] else "; no empty cell")
        out += [Table([name, *t["cols"]], [[r, *row] for r, row in zip(t["rows"], t["counts"])]),
                Paragraph(f"{name}: ratio {fmt_ratio(t['ratio'])}, chi-square p {num(t['p'])}{empty}")]
    return out


def _fill_blocks(split: str, fill: dict | None) -> list[Block]:
    if not fill:
        return []
    return [
        Heading(3, f"{split}: how much of its box each shape's mask fills"),
        Paragraph("Share of the mask box covered by the mask, over all objects (a square fills ~1, a circle ~0.79, "
                  "a triangle ~0.5, a plus ~0.56, a star ~0.4): a shape drawn wrong stands out."),
        Table(["shape", "objects", "mean", "min", "max"],
              [[k, v["objects"], num(v["mean"]), num(v["min"]), num(v["max"])] for k, v in fill.items()]),
    ]


def _hygiene_blocks(hy: dict) -> list[Block]:
    out: list[Block] = [
        Heading(2, "Split hygiene"),
        Paragraph(f"Held-out factors: {', '.join(hy['heldout_factors']) or 'none'}; "
                  f"{len(hy['heldout_combinations'])} test combinations; {hy['leaks']} leaks into train/val. "
                  f"{len(hy['duplicate_groups'])} groups of identical images (same decoded pixels).")]
    if hy["duplicate_groups"]:
        out.append(Table(["splits", "images"], [[", ".join(g["splits"]), ", ".join(g["images"][:6])]
                                                for g in hy["duplicate_groups"][:50]]))
    return out
