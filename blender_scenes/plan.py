"""Config + seed -> the list of scene specs (which objects, where, in which split). Pure: no bpy, no I/O.

Exhaustive designs take the full Cartesian product of the chosen factor levels and placement cells.
Balanced designs with a scene count take whole rounds of the product of factor levels x nine areas,
and choose the remainder so that every level and every pair of levels of two factors stays within one
of equal; the planner checks that property and refuses a design it cannot balance. Subsets divided by
fractions are split together: every level and pair of a split within one of its share inside each subset
and over the whole split where possible (see `assign_splits` for the fallbacks).

Deterministic: the plan is a pure function of the config, the seed and `plan_versions()`. Every choice is
made by integer arithmetic and random.Random seeded with strings, and the search behind the remainder and
the splits (`balanced_partition`) stops after a fixed number of swaps, never after a time: a faster or
slower machine, or another thread count, plans the same scenes.
"""
from __future__ import annotations

import platform
import random
from importlib import metadata
from collections import Counter, defaultdict
from dataclasses import dataclass, field, fields
from fractions import Fraction
from itertools import product
from typing import Iterable

import numpy as np

from .errors import InputError

from .config import FACTORS, SPLITS, DesignFile, SubsetConfig
from .labels import AREAS, LABELS, area_of_cell, cells_of_area
from .questions import balanced_indices
from .relations import level_name, pair_cells, relation_levels


@dataclass(frozen=True)
class ObjectSpec:
    role: str                 # "target", "anchor" (relation designs) or "distractor"
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
    objects: tuple[ObjectSpec, ...]            # objects[0] is the target; objects[1] the anchor of a relation
    option_index: dict[str, int] = field(default_factory=dict)   # task -> index of the correct option
    # relation designs: {"task": the one task asked of this scene, "answer": its planned answer} (depth: the
    # role, "target" or "anchor", of the closer object); None for area designs
    relation: dict[str, str] | None = None

    @property
    def target(self) -> ObjectSpec:
        return self.objects[0]

    @property
    def anchor(self) -> ObjectSpec | None:
        return self.objects[1] if self.relation else None

    def to_json(self) -> dict:
        # what dataclasses.asdict gave, built field by field: asdict deep-copies every value, and was most of the
        # time of storing a plan and of sending scenes to workers
        d = {"index": self.index, "id": self.id, "split": self.split, "subset": self.subset,
             "variation": self.variation, "objects": tuple({f: getattr(o, f) for f in _OBJECT_FIELDS}
                                                           for o in self.objects),
             "option_index": dict(self.option_index)}
        if self.relation is not None:   # area scenes keep the JSON (and plan hashes) they had before relations
            d["relation"] = dict(self.relation)
        return d

    @classmethod
    def from_json(cls, d: dict, where: str = "") -> "SceneSpec":
        """A scene of a stored plan or sent to a worker; `where` prefixes field names in errors ('scenes[3].')."""
        problem = path_problem(d["id"], d["split"])
        if problem:
            raise InputError(f"field '{where}{problem[0]}': {problem[1]}")
        objs = tuple(ObjectSpec(**{**o, "cell": tuple(o["cell"])}) for o in d["objects"])
        relation = d.get("relation")
        return cls(index=d["index"], id=d["id"], split=d["split"], subset=d["subset"],
                   variation=d["variation"], objects=objs, option_index=dict(d["option_index"]),
                   relation=dict(relation) if relation else None)


def path_problem(scene_id: object, split: object) -> tuple[str, str] | None:
    """(field, what was expected) when a scene's id or split cannot name its files (digits; one of SPLITS), else
    None. Both come from file content (plans, records), so this keeps every scene path inside its dataset."""
    if not (isinstance(scene_id, str) and scene_id.isascii() and scene_id.isdigit()):   # scene_id(): digits
        return "id", f"expected a scene id of digits like '000042', got {scene_id!r}"
    if not (isinstance(split, str) and split in SPLITS):
        return "split", f"expected one of {', '.join(SPLITS)}, got {split!r}"
    return None


_OBJECT_FIELDS = tuple(f.name for f in fields(ObjectSpec))   # immutable values: shared, not copied


def scene_id(index: int) -> str:
    return f"{index:06d}"


def package_versions(names: Iterable[str]) -> dict[str, str | None]:
    """Installed versions of these distributions; None for one not installed."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def plan_versions() -> dict[str, str | None]:
    """The versions a plan depends on besides its config and seed (stored with a dataset): this package (the
    planner), numpy (its arrays) and Python (random.Random's algorithms); None for a package not installed."""
    return {**package_versions(("scenes2real", "numpy")), "python": platform.python_version()}


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


# ---------------------------------------------------------------- balanced partitions
#
# One search makes both the remainder of a balanced design (k of the product's combinations: two parts) and
# the splits. It is integer arithmetic and a seeded random.Random throughout, and it stops after a fixed
# number of swaps, never after a time, so the same config and seed give the same plan on every machine.

SWAPS = 4000      # swaps tried under one bound before the next, looser one (a count, not a time)
_CANDIDATES = 16  # members of the violated group weighed as the first half of a swap
_SMOOTH = 50      # halve the learned weights after this many local minima, so old ones fade


def _groups(rows: list[tuple], strata: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The groups every row counts in: per stratum, each level of a factor and each pair of levels of two
    factors (factors with one level there are left out: their groups would repeat others); with several
    strata also the same groups over all of them (the whole), where such a group spans two strata or more.
    Returns an (n, k) array of group ids, padded with one last group that nothing constrains; per group
    whether it is a pair and whether it is of the whole; and its members per stratum."""
    strata_list = strata.tolist()
    levels: dict[tuple, set] = defaultdict(set)
    for r, t in zip(rows, strata_list):
        for a, v in enumerate(r):
            levels[t, a].add(v)
            levels[None, a].add(v)
    scopes = sorted(set(strata_list)) + ([None] if len(set(strata_list)) > 1 else [])
    active = {scope: [a for a in range(len(rows[0])) if len(levels[scope, a]) > 1] for scope in scopes}
    combos = {scope: [(a,) for a in act] + [(a, b) for x, a in enumerate(act) for b in act[x + 1:]]
              for scope, act in active.items()}

    def keys(scope, r):
        return [(scope, c, tuple(r[a] for a in c)) for c in combos[scope]]

    whole_keys = [keys(None, r) for r in rows] if None in combos else [[] for _ in rows]
    spans: dict[tuple, set] = defaultdict(set)
    for ks, t in zip(whole_keys, strata_list):
        for key in ks:
            spans[key].add(t)
    index: dict[tuple, int] = {}
    lists = [[index.setdefault(key, len(index)) for key in keys(t, r) + [k for k in ks if len(spans[k]) > 1]]
             for r, t, ks in zip(rows, strata_list, whole_keys)]
    n_groups = len(index) + 1
    gid = np.full((len(rows), max(map(len, lists))), n_groups - 1, dtype=np.int64)
    for i, ids in enumerate(lists):
        gid[i, :len(ids)] = ids
    is_pair, whole = np.zeros(n_groups, bool), np.zeros(n_groups, bool)
    for (scope, factors, _), g in index.items():
        is_pair[g], whole[g] = len(factors) == 2, scope is None
    members = np.zeros((n_groups, strata.max() + 1), np.int64)
    np.add.at(members, (gid, strata[:, None]), 1)
    return gid, is_pair, whole, members


def _bounds(members: np.ndarray, weights: np.ndarray, denom: int, is_pair: np.ndarray, whole: np.ndarray,
            pair_slack: int | None, use_whole: bool) -> tuple[np.ndarray, np.ndarray]:
    """Least and most members of each group in each part: the floor and ceil of its share (its members in
    each stratum times the part's fraction there, weights/denom, summed over strata); pairs widened by
    pair_slack, unbounded when it is None; groups of the whole unbounded unless use_whole."""
    share = sum(members[:, t, None] * weights[t] for t in range(len(weights)))
    lo, hi = share // denom, -(-share // denom)
    if pair_slack is not None:
        lo[is_pair], hi[is_pair] = np.maximum(lo[is_pair] - pair_slack, 0), hi[is_pair] + pair_slack
    free = (is_pair if pair_slack is None else np.zeros_like(is_pair)) | (whole & (not use_whole))
    free[-1] = True
    lo[free], hi[free] = 0, members.sum()
    return lo, hi


def _capacities(sizes: np.ndarray, weights: np.ndarray, denom: int) -> np.ndarray:
    """Rows of each stratum in each part: the floor or ceil of its share, each stratum's total exact, and the
    parts' totals over all strata within one of theirs (a stratum rounds up the parts furthest behind)."""
    cap = np.zeros_like(weights)
    behind = np.zeros(weights.shape[1], np.int64)   # share minus rows given so far, times denom
    for t, n in enumerate(sizes.tolist()):
        share = n * weights[t]
        cap[t] = share // denom
        behind += share - denom * cap[t]
        up = sorted(np.flatnonzero(share % denom).tolist(), key=lambda s: -behind[s])[: n - int(cap[t].sum())]
        cap[t, up] += 1
        behind[up] -= denom
    return cap


def _greedy(gid: np.ndarray, strata: np.ndarray, weights: np.ndarray, cap: np.ndarray, n_groups: int,
            rng: random.Random) -> np.ndarray:
    """A first assignment: rows in a seeded random order, each to the part (with room in its stratum) where
    its groups lag most behind the share of the rows placed so far."""
    denom = int(weights[0].sum())
    expect = np.zeros((n_groups, weights.shape[1]), np.int64)   # shares of the rows placed so far, times denom
    got = np.zeros_like(expect)
    room, part = cap.copy(), np.zeros(len(gid), np.int64)
    order = list(range(len(gid)))
    rng.shuffle(order)
    for i in order:
        g, t = gid[i], strata[i]
        expect[g] += weights[t]
        score = (expect[g] - denom * got[g]).sum(0)
        score[room[t] == 0] = np.iinfo(np.int64).min
        s = int(np.argmax(score))
        got[g, s] += 1
        room[t, s] -= 1
        part[i] = s
    return part


def _best_swap(gid: np.ndarray, strata: np.ndarray, part: np.ndarray, cand: np.ndarray, s: int, too_many: bool,
               up: np.ndarray, down: np.ndarray, rng: random.Random) -> tuple[int, int, int, int, int] | None:
    """The swap that lowers the weighted violation most: a row of `cand` moves between part `s` and another
    part, and a row of the same stratum moves the other way. (change, i, from, to, j), or None."""
    n_groups, n_parts = up.shape
    move = None
    for other in range(n_parts):
        a, b = (s, other) if too_many else (other, s)   # a row of cand goes a -> b, its partner b -> a
        if other == s:
            continue
        for t in np.unique(strata[cand]).tolist():
            rows_i = cand[(part[cand] == a) & (strata[cand] == t)]
            rows_j = np.flatnonzero((part == b) & (strata == t))
            if not len(rows_i) or not len(rows_j):
                continue
            wi, wj = down[:, a] + up[:, b], down[:, b] + up[:, a]
            g_j = gid[rows_j]
            base = wj[g_j].sum(1)
            shared = np.zeros(n_groups, np.int64)   # a group both rows are in does not change
            for i in rows_i.tolist():
                shared[gid[i]] = wi[gid[i]] + wj[gid[i]]
                delta = base - shared[g_j].sum(1) + wi[gid[i]].sum()
                shared[gid[i]] = 0
                low = int(delta.min())
                if move is None or low < move[0]:
                    ties = rows_j[delta == low]
                    move = (low, i, a, b, int(ties[rng.randrange(len(ties))]))
    return move


def _search(gid: np.ndarray, strata: np.ndarray, lo: np.ndarray, hi: np.ndarray, part: np.ndarray,
            rng: random.Random) -> tuple[np.ndarray, int]:
    """Swap the parts of two rows of one stratum (totals stay exact) until every group is within its bounds,
    for at most SWAPS swaps. Each step takes a random violated group and part, weighs moving a few of its
    members against every row they could trade places with, and makes the best swap; where none improves,
    the violated groups weigh more (weighted min-conflicts, which walks off plateaus). Returns the best
    assignment met and its violation (0: every bound holds)."""
    n_groups, n_parts = lo.shape
    count = np.zeros_like(lo)
    np.add.at(count, (gid, part[:, None]), 1)
    order = np.argsort(gid.ravel(), kind="stable")
    starts = np.searchsorted(gid.ravel()[order], np.arange(n_groups + 1))
    rows_of = [order[starts[g]:starts[g + 1]] // gid.shape[1] for g in range(n_groups)]   # each group's rows
    weight = np.ones_like(lo)
    part, best, best_cost, minima = part.copy(), part.copy(), None, 0
    for swaps in range(SWAPS + 1):
        over, under = count - hi, lo - count
        viol = np.maximum(over, 0) + np.maximum(under, 0)
        cost = int(viol.sum())
        if best_cost is None or cost < best_cost:
            best, best_cost = part.copy(), cost
        if cost == 0 or swaps == SWAPS:
            break
        cells = np.flatnonzero(viol)
        g, s = divmod(int(cells[rng.randrange(len(cells))]), n_parts)
        too_many = over[g, s] > 0
        # weighted change of the violation when a group gets one member more (up) or fewer (down) in a part
        up = weight * (np.maximum(over + 1, 0) + np.maximum(under - 1, 0) - viol)
        down = weight * (np.maximum(over - 1, 0) + np.maximum(under + 1, 0) - viol)
        cand = rows_of[g][(part[rows_of[g]] == s) == too_many]   # rows whose move would mend (g, s)
        if len(cand) > _CANDIDATES:
            cand = cand[sorted(rng.sample(range(len(cand)), _CANDIDATES))]
        move = _best_swap(gid, strata, part, cand, s, too_many, up, down, rng)
        if move is None or move[0] >= 0:   # a local minimum: make what is still violated weigh more
            weight += viol > 0
            minima += 1
            if minima % _SMOOTH == 0:
                weight = (weight + 1) // 2
            if move is None or move[0] > 0:
                continue
        _, i, a, b, j = move
        count[gid[i], a] -= 1
        count[gid[i], b] += 1
        count[gid[j], b] -= 1
        count[gid[j], a] += 1
        part[i], part[j] = b, a
    return best, best_cost


def balanced_partition(rows: list[tuple], strata: np.ndarray, weights: np.ndarray, denom: int, rng: random.Random,
                       ladder: Iterable[tuple[int | None, bool]]) -> tuple[np.ndarray, tuple] | None:
    """Parts 0..P-1 for rows of level values, row i in stratum strata[i] and part p taking the fraction
    weights[strata[i], p] / denom of its stratum. Each stratum gives each part its rounded share of rows
    (see _capacities), and every level and pair count of a part is the floor or ceil of its share (its
    members times that fraction), first under the tightest step of `ladder` ((pair slack, or None for
    levels only; whether groups of the whole count)) that the search meets. Returns the parts and that
    step, or None when it meets none."""
    strata = np.asarray(strata, dtype=np.int64)
    gid, is_pair, whole, members = _groups(rows, strata)
    cap = _capacities(np.bincount(strata), weights, denom)
    part = _greedy(gid, strata, weights, cap, len(is_pair), rng)
    tried = set()
    for slack, use_whole in ladder:
        step = (slack, use_whole and bool(whole.any()))   # without groups of the whole both steps are one
        if step in tried:
            continue
        tried.add(step)
        lo, hi = _bounds(members, weights, denom, is_pair, whole, *step)
        part, left = _search(gid, strata, lo, hi, part, rng)
        if left == 0:
            return part, step
    return None


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


def choose_proportional(items: np.ndarray, k: int, rng: random.Random) -> np.ndarray | None:
    """Sorted indices of k rows of `items` (rows of level indices) such that every level count and every
    pair-of-levels count is the floor or ceil of its proportional share k * count / len(items); None when
    the search finds no such choice within its fixed budget."""
    n = len(items)
    if k in (0, n):
        return np.arange(k)
    found = balanced_partition([tuple(r) for r in items.tolist()], np.zeros(n, np.int64),
                               np.array([[k, n - k]], dtype=np.int64), n, rng, [(0, False)])
    return None if found is None else np.flatnonzero(found[0] == 0)


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

FRACTION_DENOM = 10**9   # split fractions are read to nine decimal places, so shares are exact integers


def _scaled(fractions: dict[str, float], names: list[str]) -> list[int]:
    """Fractions as integers summing to FRACTION_DENOM (largest remainder), in the order of `names`."""
    exact = [Fraction(str(fractions.get(s, 0))) * FRACTION_DENOM / sum(Fraction(str(f)) for f in fractions.values())
             for s in names]
    out = [int(x) for x in exact]
    for i in sorted(range(len(names)), key=lambda i: out[i] - exact[i])[: FRACTION_DENOM - sum(out)]:
        out[i] += 1
    return out


def assign_splits(rows: list[tuple], strata: list[int], fractions: list[dict[str, float]],
                  rng: random.Random) -> list[str]:
    """Stratified splits of rows of level values, row i in subset strata[i], which is divided by
    fractions[strata[i]]. Every subset gives each split its rounded share of rows, and every level and every
    pair of levels of a split is within one of its proportional share inside every subset and over the whole
    split (all subsets together), where that is possible; else inside the subsets only, then pairs within
    two, then levels only (small designs can leave no better choice). "Possible" is what the search finds
    in its fixed budget: every shipped preset gets exact balance; a hard design may get a fallback where
    an exact split exists, and then the same one on every machine."""
    names = [s for s in SPLITS if any(f.get(s, 0) > 0 for f in fractions)]
    weights = np.array([_scaled(f, names) for f in fractions], dtype=np.int64)
    ladder = [(slack, whole) for slack in (0, 1, None) for whole in (True, False)]
    found = balanced_partition(rows, np.asarray(strata, dtype=np.int64), weights, FRACTION_DENOM, rng, ladder)
    if found is None:
        raise InputError("splits.fractions: cannot give every split its share of scenes with every level "
                         "within one of its share")
    return [names[p] for p in found[0].tolist()]


# ---------------------------------------------------------------- the plan

@dataclass
class _Target:
    subset: str
    attrs: dict
    cell: tuple[int, int] | None       # None for relation designs: the pair's cells are chosen per split
    split: str = ""
    relation: tuple[str, str] | None = None   # relation designs: (task, planned answer)

    def placement(self, rows: int, cols: int) -> str:
        """The level balanced beside the factors: the target's area, or the relation's planned answer."""
        return level_name(*self.relation) if self.relation else area_of_cell(*self.cell, rows, cols)


def _subset_counts(cfg: DesignFile, subsets: list[SubsetConfig]) -> list[int]:
    """A balanced design's scenes shared out over subsets in proportion to their product sizes (largest
    remainder)."""
    weights = [np.prod([len(v) for v in _levels(cfg, s).values()]) for s in subsets]
    total = cfg.design.scenes
    quota = [total * w / sum(weights) for w in weights]
    counts = [int(q) for q in quota]
    for i in sorted(range(len(subsets)), key=lambda i: counts[i] - quota[i])[: total - sum(counts)]:
        counts[i] += 1
    return counts


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
    for sub, n in zip(subsets, _subset_counts(cfg, subsets)):
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
    """Subsets sent to one split go there whole; the others are split together, so that levels and pairs are
    proportional inside every subset and, where the arithmetic allows, over the whole split too."""
    rows, cols = cfg.grid.rows, cfg.grid.cols
    spec = {s.name: s.split if s.split is not None else dict(cfg.splits.fractions) for s in _subsets(cfg)}
    divided = [name for name, s in spec.items() if not isinstance(s, str)]
    shared = [t for t in targets if t.subset in divided]
    for t in targets:
        if t.subset not in divided:
            t.split = spec[t.subset]
    if not shared:
        return
    levels = [(t.attrs["shape"], t.attrs["color"], t.attrs["size"], t.attrs["material"], t.placement(rows, cols))
              for t in shared]
    strata = [divided.index(t.subset) for t in shared]
    splits = assign_splits(levels, strata, [spec[name] for name in divided], _rng(cfg, "split"))
    for t, s in zip(shared, splits):
        t.split = s


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


def _combinations(cfg: DesignFile) -> tuple[dict[tuple, int], list[tuple], dict[str, dict[str, list]]]:
    """Every attribute combination of any subset with its id (first seen first), the combinations by id, and
    each subset's levels: what distractors and anchors are drawn from."""
    combos: dict[tuple, int] = {}
    for sub in _subsets(cfg):
        lv = _levels(cfg, sub)
        for c in product(lv["shape"], lv["color"], lv["size"], lv["material"]):
            combos.setdefault(c, len(combos))
    return combos, list(combos), {s.name: _levels(cfg, s) for s in _subsets(cfg)}


def _distractors(cfg: DesignFile, scenes: list[tuple[_Target, int]], split: str) -> list[list[ObjectSpec]]:
    """Balanced distractor attributes and cells for one split's scenes, in order: each distractor takes one of
    the least used attribute combinations that differ from the target's description, and one of the least
    used free cells outside the target's area (at random among ties)."""
    n = cfg.distractors.count
    if not n:
        return [[] for _ in scenes]
    rows, cols = cfg.grid.rows, cfg.grid.cols
    describe = [FACTORS.index(k) for k in cfg.questions.describe]
    rng = _rng(cfg, "distractors", split)
    combos, by_id, levels = _combinations(cfg)
    allowed: dict[tuple, np.ndarray] = {}   # (subset, target description) -> ids of the combinations allowed
    cells = [(r, c) for r in range(rows) for c in range(cols)]
    outside = {a: np.array([i for i, c in enumerate(cells) if area_of_cell(*c, rows, cols) != a]) for a in AREAS}
    combo_use, cell_use = np.zeros(len(combos), np.int64), np.zeros(len(cells), np.int64)
    out = []
    for t, _ in scenes:
        target_desc = description(t.attrs, cfg.questions.describe)
        ids = allowed.get((t.subset, target_desc))
        if ids is None:
            lv = levels[t.subset]
            ids = allowed[t.subset, target_desc] = np.array(
                [combos[c] for c in product(lv["shape"], lv["color"], lv["size"], lv["material"])
                 if tuple(c[i] for i in describe) != target_desc], dtype=np.int64)
        if not len(ids):
            raise InputError("distractors.count: no attribute combination differs from the target's "
                             f"description ({' '.join(map(str, target_desc))}); add levels or set count = 0")
        free = outside[area_of_cell(*t.cell, rows, cols)]
        objs = []
        for _ in range(n):
            combo = by_id[_least_used(ids, combo_use, rng)]
            k = _least_used(free, cell_use, rng)
            free = free[free != k]
            objs.append(ObjectSpec("distractor", cell=cells[k], area=area_of_cell(*cells[k], rows, cols),
                                   **dict(zip(FACTORS, combo))))
        out.append(objs)
    return out


def _least_used(options: np.ndarray, use: np.ndarray, rng: random.Random) -> int:
    """One of the least used options, at random among ties; counts it as used."""
    counts = use[options]
    ties = options[counts == counts.min()]
    pick = int(ties[rng.randrange(len(ties))])
    use[pick] += 1
    return pick


def plan(cfg: DesignFile) -> list[SceneSpec]:
    """Every scene of the design, ordered by split (train, val, test) and shuffled inside a split."""
    targets = _relation_targets(cfg) if cfg.relations else _targets(cfg)
    _split_targets(cfg, targets)
    _check_heldout(cfg, targets)
    rows, cols = cfg.grid.rows, cfg.grid.cols
    scenes: list[SceneSpec] = []
    for split in SPLITS:
        members = [(t, v) for t in targets if t.split == split for v in range(cfg.distractors.variations)]
        _rng(cfg, "order", split).shuffle(members)
        if cfg.relations:
            scenes += _relation_scenes(cfg, members, split, len(scenes))
            continue
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


# ---------------------------------------------------------------- relation designs (issue 13)
#
# A relation scene asks one relation task of a target and an anchor. Its planned answer is a level like the
# area of an area design: crossed with the target's factors (balanced or exhaustive, then split the same way),
# so every answer of every task is within one of equal per split. The pair's cells are then chosen so that the
# planned answer holds by construction (relations.pair_cells); the renderer measures it from the pixels.

def _relation_targets(cfg: DesignFile) -> list[_Target]:
    levels = relation_levels(cfg.questions.tasks)
    names = ["shape", "color", "size", "material"]
    out: list[_Target] = []
    subsets = _subsets(cfg)
    if cfg.design.kind == "exhaustive":
        for sub in subsets:
            lv = _levels(cfg, sub)
            for _ in range(cfg.design.repeat):
                for *attrs, level in product(*(lv[k] for k in names), levels):
                    out.append(_Target(sub.name, dict(zip(names, attrs)), None, relation=level))
        return out
    for sub, n in zip(subsets, _subset_counts(cfg, subsets)):
        lv = _levels(cfg, sub)
        sizes = [len(lv[k]) for k in names] + [len(levels)]
        rows_ = balanced_sample(sizes, n, _rng(cfg, "relations", sub.name))
        if n and imbalance(rows_, sizes) > 1:
            raise InputError(f"design.scenes: {n} scenes in subset {sub.name!r} cannot keep every level, relation "
                             f"answer and pair within one of equal; choose a multiple of {int(np.prod(sizes))} "
                             f"or a larger count")
        out += [_Target(sub.name, {k: lv[k][r[j]] for j, k in enumerate(names)}, None, relation=levels[r[-1]])
                for r in rows_]
    return out


def _relation_scenes(cfg: DesignFile, members: list[tuple[_Target, int]], split: str, start: int) -> list[SceneSpec]:
    """One split's relation scenes, in order: the pair's cells (least used cells among the pairs placed for
    the planned answer, at random among ties), the anchor's attributes (the least used combination whose
    description differs from the target's), distractors (descriptions differing from both, least used free
    cells), and the correct option's position balanced per task."""
    rows, cols = cfg.grid.rows, cfg.grid.cols
    cells = [(r, c) for r in range(rows) for c in range(cols)]
    rng = _rng(cfg, "relations", "pairs", split)
    describe = cfg.questions.describe
    combos, by_id, levels = _combinations(cfg)
    pairs: dict[tuple, np.ndarray] = {}
    combo_use, cell_use = np.zeros(len(combos), np.int64), np.zeros(len(cells), np.int64)

    def allowed(subset: str, avoid: set[tuple]) -> np.ndarray:
        lv = levels[subset]
        return np.array([combos[c] for c in product(lv["shape"], lv["color"], lv["size"], lv["material"])
                         if tuple(c[FACTORS.index(k)] for k in describe) not in avoid], dtype=np.int64)

    def obj(role: str, attrs: dict, k: int) -> ObjectSpec:
        return ObjectSpec(role, cell=cells[k], area=area_of_cell(*cells[k], rows, cols), **attrs)

    planned = []
    for t, v in members:
        task, answer = t.relation
        if t.relation not in pairs:
            pairs[t.relation] = np.array([(cells.index(a), cells.index(b))
                                          for a, b in pair_cells(task, answer, rows, cols)], dtype=np.int64)
        cand = pairs[t.relation]
        if not len(cand):
            raise InputError(f"grid: a {rows}x{cols} grid has no two cells for {task} = {answer!r}; use more rows "
                             f"and cols")
        score = cell_use[cand[:, 0]] + cell_use[cand[:, 1]]
        ties = cand[score == score.min()]
        ti, ai = (int(x) for x in ties[rng.randrange(len(ties))])
        cell_use[[ti, ai]] += 1
        target_desc = description(t.attrs, describe)
        ids = allowed(t.subset, {target_desc})
        if not len(ids):
            raise InputError("questions.tasks: a relation needs an anchor whose description differs from the "
                             f"target's ({' '.join(map(str, target_desc))}); add levels")
        anchor = dict(zip(FACTORS, by_id[_least_used(ids, combo_use, rng)]))
        objects = [obj("target", t.attrs, ti), obj("anchor", anchor, ai)]
        n = cfg.distractors.count
        if n:
            ids = allowed(t.subset, {target_desc, description(anchor, describe)})
            if not len(ids):
                raise InputError("distractors.count: no attribute combination differs from the descriptions of "
                                 "both the target and the anchor; add levels or set count = 0")
            free = np.array([k for k in range(len(cells)) if k not in (ti, ai)], dtype=np.int64)
            for _ in range(n):
                k = _least_used(free, cell_use, rng)
                free = free[free != k]
                objects.append(obj("distractor", dict(zip(FACTORS, by_id[_least_used(ids, combo_use, rng)])), k))
        planned.append((t, v, tuple(objects)))
    option_rng = _rng(cfg, "options", split)
    slots = {task: iter(balanced_indices(sum(t.relation[0] == task for t, _, _ in planned), 2, option_rng))
             for task in cfg.questions.tasks}
    out = []
    for j, (t, v, objects) in enumerate(planned):
        task, answer = t.relation
        out.append(SceneSpec(index=start + j, id=scene_id(start + j), split=split, subset=t.subset, variation=v,
                             objects=objects, option_index={task: next(slots[task])},
                             relation={"task": task, "answer": answer}))
    return out


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
        if s.relation:
            d.setdefault("relation", Counter())[level_name(s.relation["task"], s.relation["answer"])] += 1
    return {split: {k: (dict(v) if isinstance(v, Counter) else v) for k, v in d.items()} for split, d in out.items()}
