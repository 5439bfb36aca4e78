"""Config + seed -> the list of scene specs (which objects, where, in which split). Pure: no bpy, no I/O.

Exhaustive designs take the full Cartesian product of the chosen factor levels and placement cells.
Balanced designs with a scene count take whole rounds of the product of factor levels x nine areas,
and choose the remainder greedily so that every level and every pair of levels of two factors stays
within one of equal; the planner checks that property and refuses a design it cannot balance.
"""
from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from itertools import product
from typing import Iterable

import numpy as np

from .errors import InputError

from .config import SPLITS, DesignFile, SubsetConfig
from .labels import AREAS, LABELS, area_of_cell, cells_of_area
from .questions import balanced_indices


@dataclass(frozen=True)
class ObjectSpec:
    role: str                 # "target" or "distractor"
    shape: str
    color: str
    size: str
    material: str | None
    cell: tuple[int, int]     # (row, col) of the placement grid
    area: str                 # the area of that cell: what the rendered box must confirm

    def attributes(self) -> dict[str, str | None]:
        return {"shape": self.shape, "color": self.color, "size": self.size, "material": self.material}


@dataclass(frozen=True)
class SceneSpec:
    index: int
    id: str
    split: str
    subset: str
    variation: int
    objects: tuple[ObjectSpec, ...]            # objects[0] is the target
    option_index: dict[str, int] = field(default_factory=dict)   # task -> index of the correct option

    @property
    def target(self) -> ObjectSpec:
        return self.objects[0]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "SceneSpec":
        objs = tuple(ObjectSpec(**{**o, "cell": tuple(o["cell"])}) for o in d["objects"])
        return cls(index=d["index"], id=d["id"], split=d["split"], subset=d["subset"],
                   variation=d["variation"], objects=objs, option_index=dict(d["option_index"]))


def scene_id(index: int) -> str:
    return f"{index:06d}"


def _rng(cfg: DesignFile, *purpose: object) -> random.Random:
    # str seeds hash with sha512: the same on every machine and Python run
    return random.Random(":".join(str(p) for p in (cfg.seed, *purpose)))


def _subsets(cfg: DesignFile) -> list[SubsetConfig]:
    return cfg.design.subsets or [SubsetConfig(name="all")]


def _levels(cfg: DesignFile, sub: SubsetConfig) -> dict[str, list]:
    f = cfg.factors
    return {
        "shape": sub.shapes or list(f.shapes),
        "color": sub.colors or list(f.colors),
        "size": sub.sizes or list(f.sizes),
        "material": (sub.materials or list(f.materials)) or [None],
    }


def description(obj: dict | ObjectSpec, describe: Iterable[str]) -> tuple:
    attrs = obj.attributes() if isinstance(obj, ObjectSpec) else obj
    return tuple(attrs[k] for k in describe)


# ---------------------------------------------------------------- balanced sampling

def balanced_sample(sizes: list[int], n: int, rng: random.Random) -> np.ndarray:
    """n rows of level indices over factors with `sizes` levels: whole rounds of the product, then a
    remainder in which every level count and every pair count is within one of equal."""
    full = np.array(list(product(*[range(k) for k in sizes])), dtype=np.int64).reshape(-1, len(sizes))
    rounds, rem = divmod(n, len(full))
    parts = [full] * rounds
    if rem:
        pick = choose_proportional(full, rem, rng)
        if pick is None:
            raise InputError(f"design.scenes: no choice of {rem} remainder combinations keeps every level and "
                             f"pair within one of equal; choose a multiple of {len(full)} or another count")
        parts.append(full[pick])
    return np.concatenate(parts) if parts else full[:0]


def choose_proportional(items: np.ndarray, k: int, rng: random.Random, pair_slack: int = 0,
                        time_limit: float = 120.0) -> np.ndarray | None:
    """Indices of k distinct rows of `items` (rows of level indices) such that every level count and
    every pair-of-levels count is the floor or ceil of its proportional share k * count / len(items).

    An exact 0/1 feasibility program solved by scipy's HiGHS: the guarantee is by construction, not by
    luck. The seeded column order decides which of the many solutions is found. `pair_slack` widens the
    pair bounds by that much (levels stay exact); None when no choice is found within `time_limit`."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csr_matrix

    n_items, nf = items.shape
    if k in (0, n_items):
        return np.arange(k)
    sizes = items.max(0) + 1
    perm = np.array(sorted(range(n_items), key=lambda _: rng.random()))
    x = items[perm]
    groups = [x[:, a] for a in range(nf)]
    groups += [x[:, a] * sizes[b] + x[:, b] for a in range(nf) for b in range(a + 1, nf)]
    rows, lo, hi, offset = [], [], [], 0
    for j, g in enumerate(groups):
        counts = np.bincount(g)
        share = k * counts / n_items
        slack = pair_slack if j >= nf else 0
        rows.append(offset + g)
        lo.append(np.maximum(0, np.floor(share + 1e-9) - slack))
        hi.append(np.ceil(share - 1e-9) + slack)
        offset += len(counts)
    a = csr_matrix((np.ones(n_items * len(groups)), (np.concatenate(rows), np.tile(np.arange(n_items), len(groups)))),
                   shape=(offset, n_items))
    res = milp(np.zeros(n_items),   # zero cost: stop at the first feasible choice
               constraints=[LinearConstraint(a, np.concatenate(lo), np.concatenate(hi)),
                            LinearConstraint(np.ones((1, n_items)), k, k)],
               integrality=np.ones(n_items), bounds=Bounds(0, 1), options={"time_limit": time_limit})
    return None if res.x is None else np.sort(perm[res.x > 0.5])


def imbalance(rows: np.ndarray, sizes: list[int]) -> int:
    """Largest (max - min) over every factor's level counts and every two-factor table."""
    worst = 0
    nf = len(sizes)
    for a in range(nf):
        c = np.bincount(rows[:, a], minlength=sizes[a])
        worst = max(worst, int(c.max() - c.min()))
        for b in range(a + 1, nf):
            t = np.zeros((sizes[a], sizes[b]), int)
            np.add.at(t, (rows[:, a], rows[:, b]), 1)
            worst = max(worst, int(t.max() - t.min()))
    return worst


# ---------------------------------------------------------------- splits

def assign_splits(items: np.ndarray, fractions: dict[str, float], rng: random.Random) -> list[str]:
    """Stratified split of rows of level indices: each split in turn takes its share of what is left,
    chosen so that every level is within one of its proportional share, and every pair of levels too
    where that is possible (else within two, else levels only: small designs can leave no better choice)."""
    names = [s for s in SPLITS if fractions.get(s, 0) > 0]
    n = len(items)
    quota = {s: n * fractions[s] for s in names}
    counts = {s: int(q) for s, q in quota.items()}
    for s in sorted(names, key=lambda s: counts[s] - quota[s])[: n - sum(counts.values())]:
        counts[s] += 1   # largest remainder: totals are exact
    out = np.full(n, names[-1], dtype=object)
    left = np.arange(n)
    for s in names[:-1]:
        for slack, limit in ((0, 3.0), (1, 30.0), (10**6, 60.0)):
            pick = choose_proportional(items[left], counts[s], rng, pair_slack=slack, time_limit=limit)
            if pick is not None:
                break
        else:
            raise InputError(f"splits.fractions: cannot give split {s!r} {counts[s]} scenes with every level "
                             f"within one of its share")
        out[left[pick]] = s
        left = np.delete(left, pick)
    return list(out)


# ---------------------------------------------------------------- the plan

@dataclass
class _Target:
    subset: str
    attrs: dict
    cell: tuple[int, int]
    split: str = ""


def _targets(cfg: DesignFile) -> list[_Target]:
    rows, cols = cfg.grid.rows, cfg.grid.cols
    subsets = _subsets(cfg)
    out: list[_Target] = []
    if cfg.design.kind == "exhaustive":
        cells = [(r, c) for r in range(rows) for c in range(cols)]
        for sub in subsets:
            lv = _levels(cfg, sub)
            for _ in range(cfg.design.repeat):
                for shape, color, size, material, cell in product(lv["shape"], lv["color"], lv["size"],
                                                                  lv["material"], cells):
                    out.append(_Target(sub.name, dict(shape=shape, color=color, size=size, material=material), cell))
        return out
    # balanced: scenes shared out over subsets in proportion to their product sizes (largest remainder)
    weights = [np.prod([len(v) for v in _levels(cfg, s).values()]) for s in subsets]
    total = cfg.design.scenes
    quota = [total * w / sum(weights) for w in weights]
    counts = [int(q) for q in quota]
    for i in sorted(range(len(subsets)), key=lambda i: counts[i] - quota[i])[: total - sum(counts)]:
        counts[i] += 1
    for sub, n in zip(subsets, counts):
        lv = _levels(cfg, sub)
        names = ["shape", "color", "size", "material"]
        sizes = [len(lv[k]) for k in names] + [len(AREAS)]
        rows_ = balanced_sample(sizes, n, _rng(cfg, "balanced", sub.name))
        if n and imbalance(rows_, sizes) > 1:
            raise InputError(f"design.scenes: {n} scenes in subset {sub.name!r} cannot keep every level and "
                             f"pair within one of equal; choose a multiple of {int(np.prod(sizes))} or a larger count")
        cell_cycle = {a: _cycle(cells_of_area(a, rows, cols), _rng(cfg, "cells", sub.name, a)) for a in AREAS}
        for r in rows_:
            attrs = {k: lv[k][r[j]] for j, k in enumerate(names)}
            out.append(_Target(sub.name, attrs, next(cell_cycle[AREAS[r[-1]]])))
    return out


def _cycle(items: list, rng: random.Random):
    while True:
        block = list(items)
        rng.shuffle(block)
        yield from block


def _split_targets(cfg: DesignFile, targets: list[_Target]) -> None:
    """Each subset is split on its own, so levels and pairs stay proportional inside every subset."""
    rows, cols = cfg.grid.rows, cfg.grid.cols
    by_subset: dict[str, list[_Target]] = defaultdict(list)
    for t in targets:
        by_subset[t.subset].append(t)
    for sub in _subsets(cfg):
        group = by_subset[sub.name]
        spec = sub.split if sub.split is not None else dict(cfg.splits.fractions)
        if isinstance(spec, str):
            for t in group:
                t.split = spec
            continue
        items = _level_matrix([(t.attrs["shape"], t.attrs["color"], t.attrs["size"], str(t.attrs["material"]),
                                area_of_cell(*t.cell, rows, cols)) for t in group])
        for t, s in zip(group, assign_splits(items, spec, _rng(cfg, "split", sub.name))):
            t.split = s


def _level_matrix(rows: list[tuple]) -> np.ndarray:
    """Rows of level names -> rows of level indices (per column, in order of first appearance)."""
    cols = list(zip(*rows))
    index = [{v: i for i, v in enumerate(dict.fromkeys(c))} for c in cols]
    return np.array([[index[j][v] for j, v in enumerate(r)] for r in rows], dtype=np.int64).reshape(len(rows), -1)


def _check_heldout(cfg: DesignFile, targets: list[_Target]) -> None:
    """Combinations of the held-out factors that occur in test must occur in no other split."""
    held = cfg.splits.heldout
    if not held:
        return
    test = {tuple(t.attrs[k] for k in held) for t in targets if t.split == "test"}
    for t in targets:
        combo = tuple(t.attrs[k] for k in held)
        if t.split != "test" and combo in test:
            raise InputError(f"splits.heldout: combination {dict(zip(held, combo))} occurs in test and in "
                             f"{t.split!r}; held-out combinations must stay out of train and val")


def _distractors(cfg: DesignFile, scenes: list[tuple[_Target, int]], split: str) -> list[list[ObjectSpec]]:
    """Balanced distractor attributes and cells for one split's scenes, in order."""
    n = cfg.distractors.count
    rows, cols = cfg.grid.rows, cfg.grid.cols
    describe = cfg.questions.describe
    rng = _rng(cfg, "distractors", split)
    subsets = {s.name: s for s in _subsets(cfg)}
    combo_use: Counter = Counter()
    cell_use: Counter = Counter()
    out = []
    for t, _ in scenes:
        lv = _levels(cfg, subsets[t.subset])
        target_desc = description(t.attrs, describe)
        combos = [dict(shape=a, color=b, size=c, material=d) for a, b, c, d in
                  product(lv["shape"], lv["color"], lv["size"], lv["material"])]
        combos = [c for c in combos if description(c, describe) != target_desc]
        if n and not combos:
            raise InputError("distractors.count: no attribute combination differs from the target's "
                             f"description ({' '.join(map(str, target_desc))}); add levels or set count = 0")
        target_area = area_of_cell(*t.cell, rows, cols)
        free = [(r, c) for r in range(rows) for c in range(cols) if area_of_cell(r, c, rows, cols) != target_area]
        objs = []
        for _ in range(n):
            combo = min(combos, key=lambda c, r=rng.random: (combo_use[tuple(c.values())], r()))
            combo_use[tuple(combo.values())] += 1
            cell = min(free, key=lambda c, r=rng.random: (cell_use[c], r()))
            cell_use[cell] += 1
            free.remove(cell)
            objs.append(ObjectSpec("distractor", cell=cell, area=area_of_cell(*cell, rows, cols), **combo))
        out.append(objs)
    return out


def plan(cfg: DesignFile) -> list[SceneSpec]:
    """Every scene of the design, ordered by split (train, val, test) and shuffled inside a split."""
    targets = _targets(cfg)
    _split_targets(cfg, targets)
    _check_heldout(cfg, targets)
    rows, cols = cfg.grid.rows, cfg.grid.cols
    scenes: list[SceneSpec] = []
    for split in SPLITS:
        members = [(t, v) for t in targets if t.split == split for v in range(cfg.distractors.variations)]
        _rng(cfg, "order", split).shuffle(members)
        extras = _distractors(cfg, members, split)
        option_rng = _rng(cfg, "options", split)
        slots = {task: balanced_indices(len(members), len(LABELS[task]) if task != "open" else 1, option_rng)
                 for task in cfg.questions.tasks}
        for j, ((t, v), distractors) in enumerate(zip(members, extras)):
            index = len(scenes)
            target = ObjectSpec("target", cell=t.cell, area=area_of_cell(*t.cell, rows, cols), **t.attrs)
            scenes.append(SceneSpec(index=index, id=scene_id(index), split=split, subset=t.subset, variation=v,
                                    objects=(target, *distractors),
                                    option_index={task: slots[task][j] for task in cfg.questions.tasks}))
    return scenes


def summarize(scenes: list[SceneSpec]) -> dict:
    """Counts per split: scenes, and target counts per factor level and per area (for `plan`)."""
    out: dict = {}
    for s in scenes:
        d = out.setdefault(s.split, {"scenes": 0, "objects": 0, "shape": Counter(), "color": Counter(),
                                     "size": Counter(), "material": Counter(), "area": Counter(),
                                     "subset": Counter()})
        d["scenes"] += 1
        d["objects"] += len(s.objects)
        t = s.target
        for k in ("shape", "color", "size", "area"):
            d[k][getattr(t, k)] += 1
        if t.material:
            d["material"][t.material] += 1
        d["subset"][s.subset] += 1
    return {split: {k: (dict(v) if isinstance(v, Counter) else v) for k, v in d.items()} for split, d in out.items()}
