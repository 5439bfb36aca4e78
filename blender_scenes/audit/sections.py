"""Per split: counts of every factor level (targets and all objects), two-way tables of area against each
other factor, answers per task, the correct option's index, visibility; and the balance checks the design
promises (exhaustive: every count equal; balanced: within one), per subset and for the whole design."""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from itertools import product

from ..labels import AREAS, LABELS
from .balance import count_levels, figures, fmt_bound, fmt_ratio, judge
from .findings import Finding
from .scan import ATTRS, SceneObject, SceneRecord
from .source import Source

VISIBILITY_BINS = [0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0001]


def _key(v):
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
        out["targets"][k] = {"counts": {_key(a): n for a, n in c.items()}, **figures(list(c.values()))}
        if k != "distractors":
            c = count_levels((o[k] for o in objects), levels[k])
            out["objects"][k] = {"counts": {_key(a): n for a, n in c.items()}, **figures(list(c.values()))}
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
    return {"rows": [_key(x) for x in ca], "cols": [_key(y) for y in cb], "counts": grid, **figures(flat),
            "empty": [f"{_key(x)} / {_key(y)}" for x in ca for y in cb if not c.get((x, y))]}


def answers_section(questions: list, cfg) -> dict:
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


# ------------------------------------------------------------------------------------------- balance checks

def balance_checks(src: Source, rows_by_split: dict[str, list[SceneRecord]], questions: dict[str, list],
                   max_ratio: float | None) -> tuple[list[dict], list[Finding]]:
    """Every promise of the design, judged on the disk's counts. Returns the checks and the failures."""
    checks: list[dict] = []
    kind = src.cfg.design.kind
    reps = src.cfg.design.repeat * src.cfg.distractors.variations

    unit = src.cfg.distractors.variations   # scenes per planned target: splits and balance count targets

    def add(scope, split, what, counts, rule, why, strict=True, where=None, per_scene=False):
        j = judge(counts, rule, max_ratio, 1 if per_scene else unit)
        checks.append({"scope": scope, "split": split, "what": what, "rule": rule, "why": why, "strict": strict,
                       **{k: j[k] for k in ("n", "cells", "min", "max", "spread", "ratio", "bound", "ok", "chi2", "p")},
                       "empty": where or []})
        return checks[-1]

    per = "" if unit == 1 else f" target ({unit} scenes each, distractors.variations)"

    for split, rows in rows_by_split.items():
        partial = src.partial(split)
        by_subset = defaultdict(list)
        for r in rows:
            by_subset[r.subset].append(r)
        for name, members in by_subset.items():
            scope = f"{split} / subset {name}" if len(src.cfg.design.subsets) > 1 else split
            lv = factor_levels(src, [name] if src.subset(name) else None)
            whole = kind == "exhaustive" and src.whole_split_of(name) == split
            if partial:
                why, strict = "partial split (--limit or split not rendered in full): balance not expected", False
            elif whole:
                why, strict = f"exhaustive design, whole subset in this split: every combination {reps}x", True
            elif kind == "exhaustive":
                why = f"exhaustive design divided between splits: every level within one{per} of its share"
                strict = True
            else:
                why, strict = f"balanced design: every level within one{per} of equal", True
            items = [object_values(r.objects[0]) for r in members]
            rule = "exact" if whole else "within-one"
            for k in active_factors(lv) + ["area"]:
                c = count_levels((t[k] for t in items), lv[k])
                add(scope, split, f"target {k}", list(c.values()), rule, why, strict,
                    [_key(x) for x, n in c.items() if not n])
            pair_rule = "exact" if whole else "within-one"
            pair_strict = strict and whole
            pair_why = why if whole else ("pairs are within one only where the split allows it (the planner "
                                          "keeps levels exact, pairs as close as it can): reported, not enforced")
            for k in active_factors(lv):
                tb = table(items, "area", k, lv)
                add(scope, split, f"target area x {k}", [n for row in tb["counts"] for n in row], pair_rule,
                    pair_why, pair_strict, tb["empty"])
            c = count_levels((t["cell"] for t in items), lv["cell"])
            add(scope, split, "target placement cell", list(c.values()), "exact" if whole else "none",
                why if whole else "cells are balanced within each area over the whole design, not per split",
                strict and whole, [x for x, n in c.items() if not n])
            if whole:
                add_combinations(add, scope, split, items, lv, reps, why, strict)
        for task, qs in _by_task(questions.get(split, [])).items():
            k = len(LABELS[task]) if task in LABELS and task != "open" else 0
            with_options = [q for q in qs if q.options]
            if not k or not with_options:
                continue
            c = count_levels((q.options.index(q.answer) for q in with_options if q.answer in q.options), list(range(k)))
            add(split, split, f"correct option index ({task})", list(c.values()), "within-one",
                "option orders are balanced per split and task" if not partial else
                "partial split: reported only", not partial, per_scene=True)
    # the whole design (all splits together), when every split is rendered in full
    if all(not src.partial(s) for s in src.design_counts if src.design_counts[s]) and \
            all(s in rows_by_split for s in src.design_counts if src.design_counts[s]):
        all_rows = [r for rows in rows_by_split.values() for r in rows]
        by_subset = defaultdict(list)
        for r in all_rows:
            by_subset[r.subset].append(r)
        for name, members in by_subset.items():
            if src.subset(name) is None:
                continue
            scope = f"design / subset {name}" if len(src.cfg.design.subsets) > 1 else "design (all splits)"
            lv = factor_levels(src, [name])
            items = [object_values(r.objects[0]) for r in members]
            rule = "exact" if kind == "exhaustive" else "within-one"
            why = (f"exhaustive design: every combination {reps}x" if kind == "exhaustive" else
                   f"balanced design: every level and pair of levels within one{per} of equal over all splits")
            names = active_factors(lv) + ["area"]
            if kind == "exhaustive":
                add_combinations(add, scope, None, items, lv, reps, why, True)
            for k in names + ["cell"]:
                c = count_levels((t[k] for t in items), lv[k])
                add(scope, None, f"target {k}", list(c.values()), rule, why, True,
                    [_key(x) for x, n in c.items() if not n])
            for i, a in enumerate(names):
                for b in names[i + 1:]:
                    tb = table(items, a, b, lv)
                    add(scope, None, f"target {a} x {b}", [n for row in tb["counts"] for n in row], rule, why, True,
                        tb["empty"])
    failures = [Finding("balance", c["split"], None, _failure_text(c), strict=c["strict"])
                for c in checks if c["ok"] is False]
    return checks, failures


def _failure_text(c: dict) -> str:
    if c["ratio"] is None and c["bound"] == math.inf:
        broke = f"spread {c['spread']} where counts within one were expected"
    elif c["rule"] == "exact" and c["ratio"] == 1.0:
        broke = f"every count {c['min']}, not the design's {c['why'].split('every combination ')[-1]}"
    else:
        broke = f"ratio {fmt_ratio(c['ratio'])} exceeds {fmt_bound(c['bound'])}"
    return f"{c['scope']}: {c['what']}: {broke} (min {c['min']}, max {c['max']}); {c['why']}"


def add_combinations(add, scope, split, items, lv, reps, why, strict) -> None:
    """Exhaustive designs: every combination of levels and cell exactly `repeat x variations` times."""
    combos = Counter((t["shape"], t["color"], t["size"], t["material"], t["cell"]) for t in items)
    full = list(product(lv["shape"], lv["color"], lv["size"], lv["material"] or [None], lv["cell"]))
    known = set(full)
    counts = [combos.get(c, 0) for c in full] + [n for c, n in combos.items() if c not in known]
    missing = [" ".join(str(v) for v in c if v is not None) for c in full if not combos.get(c)]
    check = add(scope, split, f"every combination {reps}x (shape x color x size x material x cell)", counts,
                "exact", why, strict, missing[:20])
    # equal counts are not enough: each must be exactly `reps` (a combination twice and none missing is wrong)
    if counts and (min(counts) != reps or max(counts) != reps):
        check["ok"] = False


def _by_task(qs: list) -> dict[str, list]:
    out = defaultdict(list)
    for q in qs:
        out[q.task].append(q)
    return out


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

