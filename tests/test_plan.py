import random
from collections import Counter

import numpy as np
import pytest

from blender_scenes.config import load_preset, parse_design
from blender_scenes.labels import AREAS, area_of_cell
from blender_scenes.plan import balanced_sample, description, imbalance, plan, summarize
from blender_scenes.errors import InputError


@pytest.fixture(scope="module")
def civet():
    return plan(load_preset("civet"))


def test_civet_counts(civet):
    counts = Counter(s.split for s in civet)
    assert counts == {"train": 1296, "val": 324, "test": 3888}


def test_civet_is_exhaustive_and_held_out(civet):
    seen = [s for s in civet if s.split in ("train", "val")]
    types = Counter((s.target.shape, s.target.color, s.target.size, s.target.cell) for s in seen)
    expected = {(sh, "white", sz, (r, c)) for sh in ("square", "circle", "triangle", "star")
                for sz in ("large", "small") for r in range(9) for c in range(9)}
    expected |= {("plus", col, sz, (r, c)) for col in ("red", "green", "blue", "magenta", "yellow", "cyan")
                 for sz in ("large", "small") for r in range(9) for c in range(9)}
    assert set(types) == expected and set(types.values()) == {1}
    test_pairs = {(s.target.shape, s.target.color) for s in civet if s.split == "test"}
    train_pairs = {(s.target.shape, s.target.color) for s in seen}
    assert len(test_pairs) == 24 and not test_pairs & train_pairs


def test_civet_splits_are_stratified_inside_each_subset(civet):
    """Each subset is split on its own: inside it, every level and every pair of levels of a split is
    within one of its share; over both subsets a split's area counts are within one per subset."""
    for split, share in (("train", 0.8), ("val", 0.2)):
        for subset in ("white-shapes", "coloured-plus"):
            members = [s.target for s in civet if s.split == split and s.subset == subset]
            for key in (lambda t: t.area, lambda t: t.size, lambda t: (t.shape, t.color),
                        lambda t: (t.area, t.size), lambda t: (t.area, t.shape, t.color)):
                counts = Counter(map(key, members)).values()
                assert max(counts) - min(counts) <= 1
        areas = Counter(s.target.area for s in civet if s.split == split)
        assert len(areas) == 9 and max(areas.values()) - min(areas.values()) <= 2
        assert Counter(s.target.size for s in civet if s.split == split)["large"] == 1620 * share / 2


def test_plan_is_a_pure_function_of_config_and_seed():
    cfg = load_preset("demo")
    assert plan(cfg) == plan(cfg)
    other = parse_design({**cfg.model_dump(mode="json"), "seed": 1}, "test")
    assert plan(other) != plan(cfg)


def test_option_positions_are_balanced(civet):
    for split in ("train", "val", "test"):
        idx = Counter(s.option_index["area9"] for s in civet if s.split == split)
        assert max(idx.values()) - min(idx.values()) <= 1 and set(idx) == set(range(9))


def test_demo_balanced_within_one_levels_and_pairs():
    scenes = plan(load_preset("demo"))
    rows = [(s.target.shape, s.target.color, s.target.size, s.target.area) for s in scenes]
    for a in range(4):
        assert max(Counter(r[a] for r in rows).values()) - min(Counter(r[a] for r in rows).values()) <= 1
        for b in range(a + 1, 4):
            levels_a, levels_b = {r[a] for r in rows}, {r[b] for r in rows}
            pair = Counter((r[a], r[b]) for r in rows)
            counts = [pair.get((x, y), 0) for x in levels_a for y in levels_b]
            assert max(counts) - min(counts) <= 1, (a, b)


@pytest.mark.parametrize("sizes", [[4, 8, 2, 2, 9], [3, 3, 2, 9], [5, 7, 2, 9], [2, 3, 4, 9]])
def test_balanced_sample_within_one(sizes):
    for n in (7, 37, 100, 500):
        rows = balanced_sample(sizes, n, random.Random(n))
        assert len(rows) == n
        assert imbalance(rows, sizes) <= 1
        if n <= np.prod(sizes):
            assert len({tuple(r) for r in rows}) == n   # no combination twice before all were used


def test_imbalance_measures_the_worst_table():
    rows = np.array([[0, 0], [0, 1], [1, 0], [0, 0]])
    assert imbalance(rows, [2, 2]) == 2   # level 0 of factor 0 thrice vs level 1 once


def test_distractors_never_share_description_nor_area():
    cfg = load_preset("civet-distractors")
    scenes = plan(cfg)
    assert len(scenes) == 4860
    combos, cells_used = {"train": Counter(), "val": Counter()}, {"train": Counter(), "val": Counter()}
    for s in scenes:
        assert len(s.objects) == 4
        target = s.target
        cells = [o.cell for o in s.objects]
        assert len(set(cells)) == 4
        for d in s.objects[1:]:
            assert description(d, cfg.questions.describe) != description(target, cfg.questions.describe)
            assert d.area != target.area and d.area == area_of_cell(*d.cell, 9, 9)
            combos[s.split][(d.shape, d.color, d.size)] += 1
            cells_used[s.split][d.cell] += 1
    for split in ("train", "val"):   # least-used first, with the target's description excluded: within 2
        assert len(combos[split]) == 20 and max(combos[split].values()) - min(combos[split].values()) <= 2
        assert len(cells_used[split]) == 81 and max(cells_used[split].values()) - min(cells_used[split].values()) <= 2
    # each target combination appears in 3 variations, all in the same split
    by_target = {}
    for s in scenes:
        by_target.setdefault((s.target.shape, s.target.color, s.target.size, s.target.cell), set()).add(s.split)
    assert len(by_target) == 1620 and all(len(v) == 1 for v in by_target.values())


def test_heldout_leak_is_refused():
    cfg = load_preset("civet").model_dump(mode="json")
    cfg["design"]["subsets"][2]["colors"] = ["white", "red"]   # white shapes now also in test
    with pytest.raises(InputError, match="splits.heldout: combination .* occurs in test and in"):
        plan(parse_design(cfg, "test"))


def test_summary_counts_match_plan():
    scenes = plan(load_preset("demo"))
    s = summarize(scenes)
    assert sum(v["scenes"] for v in s.values()) == 54
    assert sum(s["train"]["area"].values()) == s["train"]["scenes"]
    assert set(s["train"]["area"]) <= set(AREAS)
