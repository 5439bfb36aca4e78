"""The report's sections of one split: counts of every factor level (targets and all objects), two-way tables
of area against each other factor, answers per task, the correct option's index, visibility, mask fill; and
the grids the pictures draw. Pure functions of the scanned records; of the audit it imports only
balance, scan and source."""
from __future__ import annotations

from collections import Counter, defaultdict

from ..labels import AREAS, LABELS
from ..questions import QuestionRecord
from ..relations import level_name as level_key
from ..relations import relation_levels
from .balance import count_levels, figures
from .scan import ATTRS, SceneObject, SceneRecord
from .source import Source

VISIBILITY_BINS = [0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0001]


def level_name(v) -> str:
    """A level as the report names it (None: "none")."""
    return "none" if v is None else str(v)


def factor_levels(src: Source, subsets: list[str] | None = None) -> dict[str, list]:
    """Declared levels of each factor (restricted to the given subsets' levels), plus areas, cells and the
    number of distractors."""
    cfg = src.cfg
    subs = [src.subset(n) for n in subsets or []]
    subs = [s for s in subs if s is not None]

    def lv(attr, declared):
        if not subs:
            return list(declared)
        used = []
        for s in subs:
            for v in getattr(s, attr) or declared:
                if v not in used:
                    used.append(v)
        return [v for v in declared if v in used]
    rows, cols = cfg.grid.rows, cfg.grid.cols
    return {
        "shape": lv("shapes", cfg.factors.shapes), "color": lv("colors", list(cfg.factors.colors)),
        "size": lv("sizes", list(cfg.factors.sizes)),
        "material": lv("materials", list(cfg.factors.materials)) if cfg.factors.materials else [],
        "area": list(AREAS), "cell": [f"{r},{c}" for r in range(rows) for c in range(cols)],
        "distractors": [cfg.distractors.count],
        # relation designs balance the planned answer where area designs balance the area
        "relation": [level_key(*lv) for lv in relation_levels(cfg.questions.tasks)] if cfg.relations else [],
    }


def object_values(o: SceneObject) -> dict:
    """The object's level of each factor, by factor name (its area from its mask)."""
    cell = o.planned_cell or o.cell or []
    return {"shape": o.shape, "color": o.color, "size": o.size, "material": o.material,
            "area": o.mask_area or o.area, "cell": ",".join(map(str, cell))}


def active_factors(levels: dict) -> list[str]:
    """Factors with more than one level: the ones balance is about."""
    return [k for k in ATTRS if len(levels[k]) > 1]


def counts_section(rows: list[SceneRecord], levels: dict) -> dict:
    """Counts per factor level for targets and for all objects; area x factor tables for targets."""
    targets = [object_values(r.objects[0]) | {"distractors": len(r.objects) - 1} for r in rows]
    objects = [object_values(o) for r in rows for o in r.objects]
    out = {"targets": {}, "objects": {}, "tables": {}}
    for k in ("shape", "color", "size", "material", "area", "cell", "distractors"):
        if k == "material" and not levels["material"]:
            continue
        c = count_levels((t[k] for t in targets), levels[k])
        out["targets"][k] = {"counts": {level_name(a): n for a, n in c.items()}, **figures(list(c.values()))}
        if k != "distractors":
            c = count_levels((o[k] for o in objects), levels[k])
            out["objects"][k] = {"counts": {level_name(a): n for a, n in c.items()}, **figures(list(c.values()))}
    for k in ("shape", "color", "size", "material", "distractors"):
        if len(levels[k]) < 2 and k != "distractors" or (k == "material" and not levels[k]):
            continue
        out["tables"][f"area x {k}"] = table(targets, "area", k, levels)
    return out


def table(items: list[dict], a: str, b: str, levels: dict) -> dict:
    ca = count_levels((t[a] for t in items), levels[a])
    cb = count_levels((t[b] for t in items), levels[b])
    c = Counter((t[a], t[b]) for t in items)
    grid = [[c.get((x, y), 0) for y in cb] for x in ca]
    flat = [n for row in grid for n in row]
    return {"rows": [level_name(x) for x in ca], "cols": [level_name(y) for y in cb], "counts": grid, **figures(flat),
            "empty": [f"{level_name(x)} / {level_name(y)}" for x in ca for y in cb if not c.get((x, y))]}


def answers_section(questions: list[QuestionRecord]) -> dict:
    """Answer counts per task and the correct option's index in the shuffled options."""
    out = {}
    by_task = defaultdict(list)
    for q in questions:
        by_task[q.task].append(q)
    for task, qs in by_task.items():
        c = count_levels((q.answer for q in qs), LABELS.get(task, ()))
        entry = {"answers": dict(c), **figures(list(c.values()))}
        with_options = [q for q in qs if q.options]
        if with_options:
            k = len(LABELS.get(task, ())) or max(len(q.options) for q in with_options)
            idx = count_levels((q.options.index(q.answer) if q.answer in q.options else -1 for q in with_options),
                               list(range(k)))
            entry["option_index"] = {str(i): n for i, n in idx.items()}
            entry["option_index_figures"] = figures([n for i, n in idx.items() if i != -1])
        out[task] = entry
    return out


def fill_section(rows: list[SceneRecord]) -> dict:
    """Per shape, the share of its box that its mask fills (square ~1, circle ~0.79, plus ~0.56, star ~0.4):
    a drawn shape that is not the named one shows here at a glance."""
    fills = defaultdict(list)
    for r in rows:
        for o in r.objects:
            box = o.mask_box
            if box and box[2] * box[3] > 0 and o.mask_pixels:
                fills[o.shape].append(o.mask_pixels / (box[2] * box[3]))
    return {str(k): {"objects": len(v), "mean": sum(v) / len(v), "min": min(v), "max": max(v)}
            for k, v in fills.items()}


def visibility_section(rows: list[SceneRecord]) -> dict:
    shares = [float(o.visible_share) for r in rows for o in r.objects if isinstance(o.visible_share, (int, float))]
    pixels = [o.mask_pixels for r in rows for o in r.objects if o.mask_pixels is not None]
    hist = [0] * (len(VISIBILITY_BINS) - 1)
    for s in shares:
        for i in range(len(hist)):
            if VISIBILITY_BINS[i] <= s < VISIBILITY_BINS[i + 1]:
                hist[i] += 1
                break
    return {"objects": len(shares), "min_share": min(shares) if shares else None,
            "mean_share": sum(shares) / len(shares) if shares else None,
            "min_pixels": min(pixels) if pixels else None,
            "histogram": {"edges": VISIBILITY_BINS[:-1] + [1.0], "counts": hist}}


def cell_grid(rows: list[SceneRecord], n_rows: int, n_cols: int, role: str = "target") -> list[list[int]]:
    grid = [[0] * n_cols for _ in range(n_rows)]
    for r in rows:
        objs = r.objects[:1] if role == "target" else r.objects
        for o in objs:
            cell = o.planned_cell or o.cell
            if cell and 0 <= cell[0] < n_rows and 0 <= cell[1] < n_cols:
                grid[cell[0]][cell[1]] += 1
    return grid


def area_grid(rows: list[SceneRecord]) -> list[list[int]]:
    grid = [[0] * 3 for _ in range(3)]
    for r in rows:
        a = r.objects[0].mask_area or r.objects[0].area
        if a in AREAS:
            i = AREAS.index(a)
            grid[i // 3][i % 3] += 1
    return grid

