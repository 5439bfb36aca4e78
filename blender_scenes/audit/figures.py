"""Which pictures a dataset report shows, and the numbers behind each: area and cell maps per split, bars per
factor and per option position, the visibility histogram, a grid of sample images. pictures.py draws them.
Of the audit it imports only pictures, progress, sections, scan and source."""
from __future__ import annotations

from ..labels import AREAS
from . import pictures
from .progress import SILENT, Phases
from .scan import SceneRecord
from .sections import area_grid, cell_grid
from .source import Source

SAMPLES_PER_SPLIT = 4
PICTURES = 6   # areas, cells, factors, options, visibility, samples: the steps of the pictures' bar


def dataset_pictures(src: Source, rows: dict[str, list[SceneRecord]], splits: dict[str, dict],
                     compare: dict[str, list[list[int]]] | None = None,
                     phases: Phases = SILENT) -> dict[str, bytes]:
    """PNG bytes by name; `compare`: area grids of compared question files, drawn beside the splits'."""
    if not any(rows.values()):
        return {}
    with phases.phase("pictures", PICTURES) as advance:
        return _pictures(src, {s: r for s, r in rows.items() if r}, splits, compare, advance)


def _pictures(src: Source, rows: dict[str, list[SceneRecord]], splits: dict[str, dict],
              compare: dict[str, list[list[int]]] | None, advance) -> dict[str, bytes]:
    """The pictures of `dataset_pictures`, one step of its bar each (one that is not drawn counts as done)."""
    figs: dict[str, bytes] = {}
    figs["areas"] = pictures.heatmaps({s: area_grid(r) for s, r in rows.items()} | (compare or {}),
                                      "targets per area (from each target's mask)",
                                      xlabels=["left", "center", "right"], ylabels=["top", "center", "bottom"])
    advance()
    figs["cells"] = pictures.heatmaps({s: cell_grid(r, src.cfg.grid.rows, src.cfg.grid.cols) for s, r in rows.items()},
                                      "targets per placement cell (planned_cell)")
    advance()
    figs["factors"] = pictures.factor_bars({s: _factor_counts(splits[s]) for s in rows}, "targets per factor level")
    advance()
    idx = {s: {f"option index ({t})": v.get("option_index", {}) for t, v in splits[s]["answers"].items()
               if v.get("option_index")} for s in rows}
    if any(idx.values()):
        figs["options"] = pictures.factor_bars(idx, "position of the correct option in the shuffled options")
    advance()
    vis = {s: splits[s]["visibility"]["histogram"]["counts"] for s in rows}
    edges = next(iter(splits.values()))["visibility"]["histogram"]["edges"]
    figs["visibility"] = pictures.histogram(vis, edges, "visible share of every object", "visible share")
    advance()
    grid = pictures.sample_grid([x for s, r in rows.items() for x in _samples(s, r)], src.root)
    if grid:
        figs["samples"] = grid
    advance()
    return figs


def _factor_counts(split: dict) -> dict[str, dict]:
    """Targets per level of each factor (cells and areas drawn elsewhere), then per area label in label order."""
    targets = split["counts"]["targets"]
    out = {k: v["counts"] for k, v in targets.items() if k not in ("cell", "area")}
    out["answer (area9)"] = {a: targets["area"]["counts"].get(a, 0) for a in AREAS}
    return out


def _samples(split: str, rows: list[SceneRecord]) -> list[pictures.Sample]:
    """A few scenes spread over the split, each captioned with its target and the area of its mask."""
    step = max(1, len(rows) // SAMPLES_PER_SPLIT)
    out = []
    for rec in rows[::step][:SAMPLES_PER_SPLIT]:
        t = rec.objects[0]
        words = " ".join(str(getattr(t, k)) for k in ("size", "color", "material", "shape") if getattr(t, k))
        out.append(pictures.Sample(rec.image, [(o.mask_box, o.role) for o in rec.objects],
                                   [f"{split} {rec.id}: {words}", f"-> {t.mask_area}"]))
    return out
