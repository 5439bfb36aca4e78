"""Balance figures of counts: max/min ratio, spread, empty levels, a chi-square test against uniform, and the
bound a design promises (exact for exhaustive designs, within one for balanced ones). Pure functions; imports
nothing of the audit. scipy is imported inside `figures`, where a chi-square is computed: it is heavy."""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence


def count_levels(values: Iterable[Hashable], levels: Sequence[Hashable]) -> dict:
    """Counts in the order of the declared levels (zeros kept: an empty level is a finding), then any
    undeclared level seen on disk."""
    c = Counter(values)
    out = {lv: c.get(lv, 0) for lv in levels}
    for lv, n in c.items():
        if lv not in out:
            out[lv] = n
    return out


def figures(counts: Sequence[int]) -> dict:
    """ratio = max/min (None when some count is 0), spread = max - min, chi-square against uniform."""
    counts = [int(c) for c in counts]
    n = sum(counts)
    if not counts:
        return {"n": 0, "cells": 0, "min": None, "max": None, "spread": None, "ratio": None, "mean": None,
                "chi2": None, "p": None}
    lo, hi = min(counts), max(counts)
    out = {"n": n, "cells": len(counts), "min": lo, "max": hi, "spread": hi - lo, "mean": n / len(counts),
           "ratio": (hi / lo) if lo > 0 else None, "chi2": None, "p": None}
    if len(counts) > 1 and n > 0:
        if lo == hi:
            out["chi2"], out["p"] = 0.0, 1.0
        else:
            from scipy.stats import chisquare
            res = chisquare(counts)
            out["chi2"], out["p"] = float(res.statistic), float(res.pvalue)
    return out


def within_one_bound(counts: Sequence[int], unit: int = 1) -> float:
    """(m+1)/m with m the floor of the mean count in units: counts within one unit of equal never exceed it
    (m = 0: inf). The unit is how many scenes share one planned target (distractors.variations)."""
    m = math.floor(sum(counts) / (unit * len(counts)) + 1e-9) if counts else 0
    return (m + 1) / m if m > 0 else math.inf


def judge(counts: Sequence[int], rule: str, max_ratio: float | None = None, unit: int = 1) -> dict:
    """Figures plus the verdict under a rule: 'exact' (every count equal: ratio 1.0), 'within-one' (of
    `unit` scenes), or 'none' (reported only). `max_ratio` replaces the rule's bound."""
    f = figures(counts)
    if rule == "exact":
        bound = 1.0
    elif rule == "within-one":
        bound = within_one_bound(counts, unit)
    else:
        bound = None
    if max_ratio is not None and rule != "none":
        bound = max_ratio
    f["rule"], f["bound"] = rule, bound
    if bound is None or not counts:
        f["ok"] = None
    elif f["ratio"] is None:   # an empty cell: only "within one" of a mean below 1 allows it
        f["ok"] = bound == math.inf and f["spread"] <= unit
    else:
        f["ok"] = f["ratio"] <= bound + 1e-12 and (bound != math.inf or f["spread"] <= unit)
    return f


def fmt_ratio(r: float | None) -> str:
    return "inf (empty cell)" if r is None else f"{r:.3f}"


def fmt_bound(b: float | None) -> str:
    if b is None:
        return "-"
    return "within one (mean < 1)" if b == math.inf else f"{b:.3f}"
