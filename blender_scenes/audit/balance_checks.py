"""The balance checks: every promise of the design judged on the counts recounted from disk. Per split and
subset (exhaustive: every count equal where a split holds a whole subset; otherwise within one), the correct
option's position per task, relation answers per task, and the whole design over all splits. Relation designs
balance the planned answer (e.g. 'left_right:left') where area designs balance the target's area, and promise
nothing of cells. Of the audit it imports only balance, sections, scan, source, findings and relation_checks."""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from itertools import product

from ..labels import LABELS
from ..questions import QuestionRecord
from .balance import count_levels, fmt_bound, fmt_ratio, judge
from .findings import Finding
from .relation_checks import answer_level
from .scan import SceneRecord
from .sections import active_factors, factor_levels, level_name, object_values, table
from .source import Source

FIGURES = ("n", "cells", "min", "max", "spread", "ratio", "bound", "ok", "chi2", "p")


@dataclass
class BalanceCheck:
    """One promise judged: where (scope, split), of what counts, under which rule and why, with its figures."""
    scope: str
    split: str | None            # None: over the whole design
    what: str
    rule: str                    # "exact", "within-one" or "none" (reported only)
    why: str
    strict: bool                 # False: reported only, never fails --strict
    n: int
    cells: int
    min: int | None
    max: int | None
    spread: int | None
    ratio: float | None          # None: an empty cell
    bound: float | None
    ok: bool | None              # None: nothing to judge
    chi2: float | None
    p: float | None
    empty: list[str]             # the empty cells, named

    def to_json(self) -> dict:
        return asdict(self)

    def failure(self) -> Finding:
        if self.ratio is None and self.bound == math.inf:
            broke = f"spread {self.spread} where counts within one were expected"
        elif self.rule == "exact" and self.ratio == 1.0:
            broke = f"every count {self.min}, not the design's {self.why.split('every combination ')[-1]}"
        else:
            broke = f"ratio {fmt_ratio(self.ratio)} exceeds {fmt_bound(self.bound)}"
        return Finding("balance", self.split, None, f"{self.scope}: {self.what}: {broke} (min {self.min}, max "
                       f"{self.max}); {self.why}", strict=self.strict)


@dataclass(frozen=True)
class Promise:
    """What the design promises of a group of counts: the rule, why, and whether breaking it fails --strict."""
    rule: str
    why: str
    strict: bool = True


@dataclass
class Checklist:
    """The checks judged so far, and what every judgement shares: --max-ratio and how many scenes make one
    planned target (distractors.variations: splits and balance count targets)."""
    max_ratio: float | None
    unit: int
    checks: list[BalanceCheck] = field(default_factory=list)

    def judge(self, scope: str, split: str | None, what: str, counts: list[int], promise: Promise,
              empty: list[str] | None = None, per_scene: bool = False) -> BalanceCheck:
        figures = judge(counts, promise.rule, self.max_ratio, 1 if per_scene else self.unit)
        check = BalanceCheck(scope, split, what, promise.rule, promise.why, promise.strict,
                             **{k: figures[k] for k in FIGURES}, empty=empty or [])
        self.checks.append(check)
        return check


def balance_checks(src: Source, rows_by_split: dict[str, list[SceneRecord]],
                   questions: dict[str, list[QuestionRecord]], max_ratio: float | None) -> list[BalanceCheck]:
    """Every promise of the design, judged on the disk's counts; `failures` names the broken ones."""
    checklist = Checklist(max_ratio, src.cfg.distractors.variations)
    for split, rows in rows_by_split.items():
        for name, members in _by_subset(rows).items():
            _subset_checks(src, split, name, members, checklist)
        _option_checks(split, questions.get(split, []), src.partial(split), checklist)
        if src.cfg.relations:
            _relation_answer_checks(src, split, rows, checklist)
    if _whole_design_on_disk(src, rows_by_split):
        all_rows = [r for rows in rows_by_split.values() for r in rows]
        for name, members in _by_subset(all_rows).items():
            if src.subset(name) is not None:
                _design_checks(src, name, members, checklist)
    return checklist.checks


def failures(checks: list[BalanceCheck]) -> list[Finding]:
    return [c.failure() for c in checks if c.ok is False]


def _by_subset(rows: list[SceneRecord]) -> dict[str, list[SceneRecord]]:
    out = defaultdict(list)
    for r in rows:
        out[r.subset].append(r)
    return out


def _placement(src: Source) -> str:
    """The level balanced beside the factors: the target's area, or a relation design's answer."""
    return "relation" if src.cfg.relations else "area"


def _items(src: Source, members: list[SceneRecord]) -> list[dict]:
    """Each scene's target levels; a relation scene's also its answer's level (from its recorded question)."""
    items = [object_values(r.objects[0]) for r in members]
    if src.cfg.relations:
        for item, r in zip(items, members):
            q = r.questions[0] if r.questions else None
            item["relation"] = answer_level(src.cfg, r, q.task, q.answer) if q else None
    return items


def _relation_answer_checks(src: Source, split: str, rows: list[SceneRecord], checklist: Checklist) -> None:
    """Per relation task, its answers (depth: which of the two is closer) within one of equal per split."""
    promise = _split_promise(src, split, False, checklist.unit)
    levels = factor_levels(src)["relation"]
    answers = [a["relation"] for a in _items(src, rows)]
    for task in src.cfg.questions.tasks:
        mine = [lv for lv in levels if lv.startswith(f"{task}:")]
        c = count_levels((a for a in answers if a and a.startswith(f"{task}:")), mine)
        checklist.judge(split, split, f"relation answers ({task})", list(c.values()), promise,
                        [x for x, n in c.items() if not n])


def _per_target(unit: int) -> str:
    return "" if unit == 1 else f" target ({unit} scenes each, distractors.variations)"


def _split_promise(src: Source, split: str, whole: bool, unit: int) -> Promise:
    """What a split promises of one subset's levels: all equal where it holds the whole subset of an
    exhaustive design, else within one; never enforced in a partial split."""
    rule = "exact" if whole else "within-one"
    if src.partial(split):
        return Promise(rule, "partial split (--limit or split not rendered in full): balance not expected", False)
    if whole:
        reps = src.cfg.design.repeat * unit
        return Promise(rule, f"exhaustive design, whole subset in this split: every combination {reps}x")
    if src.cfg.design.kind == "exhaustive":
        return Promise(rule, f"exhaustive design divided between splits: every level within one{_per_target(unit)} "
                       "of its share")
    return Promise(rule, f"balanced design: every level within one{_per_target(unit)} of equal")


def _subset_checks(src: Source, split: str, name: str, members: list[SceneRecord], checklist: Checklist) -> None:
    """One subset within one split: its levels, area against each factor, its cells, and (where the split holds
    the whole subset of an exhaustive design) every combination."""
    scope = f"{split} / subset {name}" if len(src.cfg.design.subsets) > 1 else split
    lv = factor_levels(src, [name] if src.subset(name) else None)
    whole = src.cfg.design.kind == "exhaustive" and src.whole_split_of(name) == split
    levels = _split_promise(src, split, whole, checklist.unit)
    place = _placement(src)
    items = _items(src, members)
    for k in [*active_factors(lv), place]:
        c = count_levels((t[k] for t in items), lv[k])
        checklist.judge(scope, split, f"target {k}", list(c.values()), levels,
                        [level_name(x) for x, n in c.items() if not n])
    pairs = levels if whole else Promise("within-one", "pairs are within one only where the split allows it (the "
                                         "planner keeps levels exact, pairs as close as it can): reported, not "
                                         "enforced", False)
    for k in active_factors(lv):
        tb = table(items, place, k, lv)
        checklist.judge(scope, split, f"target {place} x {k}", [n for row in tb["counts"] for n in row], pairs,
                        tb["empty"])
    if place == "area":   # relation designs choose cells per pair and promise nothing of them
        cells = levels if whole else Promise("none", "cells are balanced within each area over the whole design, "
                                             "not per split", False)
        c = count_levels((t["cell"] for t in items), lv["cell"])
        checklist.judge(scope, split, "target placement cell", list(c.values()), cells,
                        [x for x, n in c.items() if not n])
    if whole:
        _combinations_check(checklist, scope, split, items, lv, src.cfg.design.repeat * checklist.unit, levels, place)


def _option_checks(split: str, questions: list[QuestionRecord], partial: bool, checklist: Checklist) -> None:
    """The correct option's position, per task with a fixed label set: within one of equal per split."""
    promise = Promise("within-one", "option orders are balanced per split and task" if not partial else
                      "partial split: reported only", not partial)
    for task, qs in _by_task(questions).items():
        k = 2 if task == "depth" else len(LABELS[task]) if task in LABELS and task != "open" else 0
        with_options = [q for q in qs if q.options]
        if not k or not with_options:
            continue
        c = count_levels((q.options.index(q.answer) for q in with_options if q.answer in q.options), list(range(k)))
        checklist.judge(split, split, f"correct option index ({task})", list(c.values()), promise, per_scene=True)


def _whole_design_on_disk(src: Source, rows_by_split: dict[str, list[SceneRecord]]) -> bool:
    """Every split the design plans scenes for is on disk and rendered in full."""
    planned = [s for s in src.design_counts if src.design_counts[s]]
    return all(not src.partial(s) for s in planned) and all(s in rows_by_split for s in planned)


def _design_checks(src: Source, name: str, members: list[SceneRecord], checklist: Checklist) -> None:
    """One subset over all splits: exhaustive designs every combination, every level and pair of levels."""
    exhaustive = src.cfg.design.kind == "exhaustive"
    reps = src.cfg.design.repeat * checklist.unit
    scope = f"design / subset {name}" if len(src.cfg.design.subsets) > 1 else "design (all splits)"
    lv = factor_levels(src, [name])
    place = _placement(src)
    items = _items(src, members)
    promise = Promise("exact", f"exhaustive design: every combination {reps}x") if exhaustive else \
        Promise("within-one", f"balanced design: every level and pair of levels within one"
                f"{_per_target(checklist.unit)} of equal over all splits")
    names = [*active_factors(lv), place]
    if exhaustive:
        _combinations_check(checklist, scope, None, items, lv, reps, promise, place)
    for k in names + (["cell"] if place == "area" else []):
        c = count_levels((t[k] for t in items), lv[k])
        checklist.judge(scope, None, f"target {k}", list(c.values()), promise,
                        [level_name(x) for x, n in c.items() if not n])
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            tb = table(items, a, b, lv)
            checklist.judge(scope, None, f"target {a} x {b}", [n for row in tb["counts"] for n in row], promise,
                            tb["empty"])


def _combinations_check(checklist: Checklist, scope: str, split: str | None, items: list[dict], lv: dict,
                        reps: int, promise: Promise, place: str = "area") -> None:
    """Exhaustive designs: every combination of levels and cell (relation designs: and relation answer) exactly
    `repeat x variations` times."""
    last = "cell" if place == "area" else place
    combos = Counter((t["shape"], t["color"], t["size"], t["material"], t[last]) for t in items)
    full = list(product(lv["shape"], lv["color"], lv["size"], lv["material"] or [None], lv[last]))
    known = set(full)
    counts = [combos.get(c, 0) for c in full] + [n for c, n in combos.items() if c not in known]
    missing = [" ".join(str(v) for v in c if v is not None) for c in full if not combos.get(c)]
    check = checklist.judge(scope, split, f"every combination {reps}x (shape x color x size x material x {last})",
                            counts, Promise("exact", promise.why, promise.strict), missing[:20])
    # equal counts are not enough: each must be exactly `reps` (a combination twice and none missing is wrong)
    if counts and (min(counts) != reps or max(counts) != reps):
        check.ok = False


def _by_task(qs: list[QuestionRecord]) -> dict[str, list[QuestionRecord]]:
    out = defaultdict(list)
    for q in qs:
        out[q.task].append(q)
    return out
