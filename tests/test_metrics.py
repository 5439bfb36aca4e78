"""Metrics of one task, checked against numbers worked out by hand."""
import numpy as np
import pytest

from evaluation.metrics import bootstrap_intervals, confusion_matrix, task_metrics

# (true, parsed) of 10 area9 answers; None = unparseable.
PAIRS = [
    ("top left", "top left"), ("top left", "center"), ("top left", None),
    ("center", "center"), ("center", "center"), ("center", "top left"),
    ("bottom right", "bottom right"), ("bottom right", "center"), ("bottom right", None),
    ("top center", "top center"),
]


def test_hand_computed_scores():
    m = task_metrics(PAIRS, "area9", bootstrap=200, seed=1)
    assert m["n"] == 10 and m["correct"] == 5
    assert m["accuracy"] == pytest.approx(0.5)
    # F1 = 2TP / (support + predicted): top left 2/5, center 4/7, bottom right 2/4, top center 2/2
    assert m["macro_f1"] == pytest.approx((2 / 5 + 4 / 7 + 2 / 4 + 1.0) / 4)
    tl = m["per_class"]["top left"]
    assert (tl["precision"], tl["recall"], tl["support"], tl["predicted"]) == (0.5, pytest.approx(1 / 3), 3, 2)
    c = m["per_class"]["center"]
    assert (c["precision"], c["recall"], c["f1"]) == (0.5, pytest.approx(2 / 3), pytest.approx(4 / 7))
    empty = m["per_class"]["bottom left"]
    assert empty == {"precision": None, "recall": None, "f1": None, "support": 0, "predicted": 0}
    assert m["unparseable"] == 2 and m["unparseable_rate"] == pytest.approx(0.2)
    assert m["center_share"]["true"] == pytest.approx(0.3)
    assert m["center_share"]["predicted"] == pytest.approx(0.4)
    assert m["center_share"]["bias"] == pytest.approx(0.1)
    assert m["distribution"]["predicted"]["unparseable"] == 2
    assert m["distribution"]["predicted"]["center"] == 4
    assert m["distribution"]["true"]["bottom right"] == 3


def test_confusion_has_an_unparseable_column():
    m = task_metrics(PAIRS, "area9", bootstrap=0)
    columns = m["confusion"]["columns"]
    assert columns[-1] == "unparseable" and len(columns) == 10
    row = dict(zip(columns, m["confusion"]["counts"][m["confusion"]["rows"].index("top left")]))
    assert row["top left"] == 1 and row["center"] == 1 and row["unparseable"] == 1
    assert sum(map(sum, m["confusion"]["counts"])) == 10
    assert m["accuracy_ci95"] is None  # no bootstrap asked


def test_accuracy_grid_is_laid_out_as_the_image():
    grid = task_metrics(PAIRS, "area9", bootstrap=0)["accuracy_grid"]
    assert grid[0] == [pytest.approx(1 / 3), 1.0, None]
    assert grid[1] == [None, pytest.approx(2 / 3), None]
    assert grid[2] == [None, None, pytest.approx(1 / 3)]
    horizontal = task_metrics([("left", "left"), ("right", "left"), ("right", "right")], "horizontal", 0)
    assert horizontal["accuracy_grid"] == [[1.0, None, 0.5]]
    vertical = task_metrics([("top", None), ("bottom", "bottom")], "vertical", 0)
    assert vertical["accuracy_grid"] == [[0.0], [None], [1.0]]


def test_labels_outside_the_task_are_rejected():
    with pytest.raises(ValueError, match="not a label"):
        confusion_matrix([("top", "top")], "area9")
    with pytest.raises(ValueError, match="not a label"):
        confusion_matrix([("left", "top left")], "horizontal")


def test_empty_task():
    m = task_metrics([], "area9")
    assert m["n"] == 0 and m["accuracy"] is None and m["macro_f1"] is None and m["accuracy_ci95"] is None


def _naive_bootstrap(pairs, task, samples, seed):
    """Resample questions one by one (the textbook way) and recompute the scores."""
    rng = np.random.default_rng(seed)
    acc, f1 = [], []
    for _ in range(samples):
        draw = [pairs[i] for i in rng.integers(0, len(pairs), len(pairs))]
        m = task_metrics(draw, task, bootstrap=0)
        acc.append(m["accuracy"])
        f1.append(m["macro_f1"])
    return np.percentile(acc, [2.5, 97.5]), np.percentile(f1, [2.5, 97.5])


def test_bootstrap_matches_resampling_questions_and_is_seeded():
    rng = np.random.default_rng(0)
    labels = ["left", "center", "right"]
    pairs = []
    for _ in range(300):
        true = labels[rng.integers(3)]
        r = rng.random()
        pairs.append((true, true if r < 0.6 else (None if r < 0.7 else labels[rng.integers(3)])))
    m = task_metrics(pairs, "horizontal", bootstrap=2000, seed=3)
    naive_acc, naive_f1 = _naive_bootstrap(pairs, "horizontal", 1500, seed=11)
    assert m["accuracy_ci95"] == pytest.approx(list(naive_acc), abs=0.015)
    assert m["macro_f1_ci95"] == pytest.approx(list(naive_f1), abs=0.015)
    lo, hi = m["accuracy_ci95"]
    assert lo < m["accuracy"] < hi
    again = task_metrics(pairs, "horizontal", bootstrap=2000, seed=3)
    assert again["accuracy_ci95"] == m["accuracy_ci95"]
    other = bootstrap_intervals(confusion_matrix(pairs, "horizontal"), samples=2000, seed=4)
    assert other["accuracy"] != m["accuracy_ci95"]


def test_relation_metrics_and_answer_bias():
    pairs = [("left", "left"), ("left", "left"), ("right", "left"), ("right", "left"), ("right", "right"),
             ("right", None)]
    m = task_metrics(pairs, "left_right", bootstrap=0)
    assert m["accuracy"] == pytest.approx(3 / 6) and m["labels"] == ["left", "right"]
    assert m["confusion"]["counts"] == [[2, 0, 0], [2, 1, 1]]
    # F1 = 2TP / (support + predicted): left 4/(2+4), right 2/(4+1)
    assert m["macro_f1"] == pytest.approx((4 / 6 + 2 / 5) / 2)
    assert m["answer_bias"] == {"label": "left", "true": pytest.approx(2 / 6), "predicted": pytest.approx(4 / 6),
                                "bias": pytest.approx(2 / 6)}
    assert m["accuracy_grid"] == [[1.0, 0.25]] and "center_share" not in m
    above = task_metrics([("above", "below"), ("below", "below")], "above_below", bootstrap=0)
    assert above["accuracy_grid"] == [[0.0], [1.0]] and above["answer_bias"]["predicted"] == 0.0


def test_depth_metrics_count_option_positions():
    m = task_metrics([("first", "first"), ("second", "first"), ("second", "second"), ("first", None)], "depth",
                     bootstrap=0)
    assert m["labels"] == ["first", "second"] and m["accuracy"] == pytest.approx(0.5)
    assert m["answer_bias"]["label"] == "first" and m["answer_bias"]["bias"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="not a label of task 'depth'"):
        task_metrics([("dog", "dog")], "depth", bootstrap=0)


def test_area_tasks_keep_the_center_share_as_their_bias():
    m = task_metrics(PAIRS, "area9", bootstrap=0)
    assert m["answer_bias"] == {"label": "center", **m["center_share"]}
