"""Metrics of one task of a run, from (true label, parsed label or None) pairs.

Everything comes from one confusion matrix whose last column counts unparseable answers, which are
wrong answers (never dropped). Bootstrap intervals resample questions: drawing n questions with
replacement is the same as drawing the confusion cells from a multinomial with the observed cell
frequencies, so they cost no loop over questions. Relation tasks use the same matrix over their two
answers; `depth` has no fixed labels (its options are the objects' names), so its pairs are given as which
option was meant and chosen: `first` or `second` in the order the question says them. No bpy, no torch.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from blender_scenes.labels import AREAS, LABELS, MC_POSITIONS, RELATION_TASKS, TASKS

UNPARSEABLE = "unparseable"
#: the classes of `depth`: the option said first in the question, or the one said second
DEPTH_LABELS: tuple[str, ...] = ("first", "second")


def task_labels(task: str, positions: int = len(MC_POSITIONS)) -> tuple[str, ...]:
    """The classes a task's metrics count: its labels, or the options' positions: first / second for depth,
    A, B, ... (the first `positions`) for mc."""
    if task == "mc":
        return MC_POSITIONS[:positions]
    return DEPTH_LABELS if task == "depth" else LABELS[task]


def option_class(option: str | None, options: list[str], labels: tuple[str, ...]) -> str | None:
    """The class of a depth or mc answer, its option's position: 'first' / 'second', or 'A', 'B', ... (`labels`:
    `task_labels`); None stays None (unparseable)."""
    return None if option is None else labels[options.index(option)]


def confusion_matrix(pairs: Iterable[tuple[str, str | None]], task: str,
                     labels: tuple[str, ...] | None = None) -> np.ndarray:
    """K x (K+1) counts: rows = true label, columns = parsed label, then unparseable (None)."""
    labels = labels or task_labels(task)
    index = {label: i for i, label in enumerate(labels)}
    k = len(labels)
    matrix = np.zeros((k, k + 1), dtype=np.int64)
    for true, parsed in pairs:
        if true not in index:
            raise ValueError(f"answer {true!r} is not a label of task {task!r}")
        if parsed is not None and parsed not in index:
            raise ValueError(f"parsed {parsed!r} is not a label of task {task!r}")
        matrix[index[true], k if parsed is None else index[parsed]] += 1
    return matrix


def _accuracy_and_macro_f1(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and macro-F1 of one (K, K+1) matrix or a batch (B, K, K+1).

    F1 of a class = 2 TP / (support + predicted); macro-F1 averages the classes that occur as a true
    or a parsed label (as sklearn's f1_score(average="macro") over those labels)."""
    m = matrix.reshape((-1,) + matrix.shape[-2:]).astype(np.float64)
    k = m.shape[1]
    n = m.sum(axis=(1, 2))
    tp = np.einsum("bii->bi", m[:, :, :k])
    support = m.sum(axis=2)
    predicted = m[:, :, :k].sum(axis=1)
    denom = support + predicted
    present = denom > 0
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=present)
    macro = np.divide(f1.sum(axis=1), present.sum(axis=1), out=np.zeros_like(n), where=present.any(axis=1))
    accuracy = np.divide(tp.sum(axis=1), n, out=np.zeros_like(n), where=n > 0)
    return accuracy, macro


def bootstrap_intervals(matrix: np.ndarray, samples: int = 1000, seed: int = 0,
                        level: float = 0.95) -> dict[str, list[float] | None]:
    """Percentile intervals for accuracy and macro-F1 over `samples` resamples of the questions."""
    n = int(matrix.sum())
    if n == 0 or samples <= 0:
        return {"accuracy": None, "macro_f1": None}
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, matrix.ravel() / n, size=samples).reshape((samples,) + matrix.shape)
    accuracy, macro = _accuracy_and_macro_f1(draws)
    tail = 100 * (1 - level) / 2
    return {name: [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]
            for name, values in (("accuracy", accuracy), ("macro_f1", macro))}


def _ratio(a: float, b: float) -> float | None:
    return float(a) / float(b) if b else None


def _grid(task: str, by_label: dict[str, float | None]) -> list[list[float | None]]:
    """Accuracy per true answer laid out as the image: 3x3 (area9/open), 1x3 (horizontal), 3x1 (vertical),
    1x2 (left_right: left, right; depth: first, second), 2x1 (above_below: above, below)."""
    labels = list(by_label)
    if task in ("horizontal", "left_right", "depth", "mc"):
        return [[by_label[label] for label in labels]]
    if task in ("vertical", "above_below"):
        return [[by_label[label]] for label in labels]
    return [[by_label[labels[3 * r + c]] for c in range(3)] for r in range(3)]


def task_metrics(pairs: Iterable[tuple[str, str | None]], task: str, bootstrap: int = 1000,
                 seed: int = 0, labels: tuple[str, ...] | None = None) -> dict:
    """Accuracy, macro-F1, per-class scores, confusion, distributions and intervals of one task (its classes:
    `labels`, default `task_labels(task)`)."""
    labels = list(labels or task_labels(task))
    k = len(labels)
    matrix = confusion_matrix(pairs, task, tuple(labels))
    n = int(matrix.sum())
    tp = np.diag(matrix[:, :k])
    support = matrix.sum(axis=1)
    predicted = matrix[:, :k].sum(axis=0)
    accuracy, macro = (float(v[0]) for v in _accuracy_and_macro_f1(matrix))
    per_class = {}
    for i, label in enumerate(labels):
        precision, recall = _ratio(tp[i], predicted[i]), _ratio(tp[i], support[i])
        per_class[label] = {
            "precision": precision, "recall": recall,
            "f1": _ratio(2 * tp[i], support[i] + predicted[i]),
            "support": int(support[i]), "predicted": int(predicted[i]),
        }
    unparseable = int(matrix[:, k].sum())
    by_area = {label: per_class[label]["recall"] for label in labels}
    bias = _answer_bias(task, labels, support, predicted, n)
    intervals = bootstrap_intervals(matrix, bootstrap, seed)
    # area tasks keep their centre bias under its first name
    center = {"center_share": {key: bias[key] for key in ("true", "predicted", "bias")}} if task in TASKS else {}
    return {
        "task": task,
        "n": n,
        "correct": int(tp.sum()),
        "accuracy": accuracy if n else None,
        "accuracy_ci95": intervals["accuracy"],
        "macro_f1": macro if n else None,
        "macro_f1_ci95": intervals["macro_f1"],
        "unparseable": unparseable,
        "unparseable_rate": _ratio(unparseable, n),
        "labels": labels,
        "per_class": per_class,
        "confusion": {"rows": labels, "columns": labels + [UNPARSEABLE],
                      "counts": matrix.tolist()},
        "distribution": {
            "true": {label: int(support[i]) for i, label in enumerate(labels)},
            "predicted": {**{label: int(predicted[i]) for i, label in enumerate(labels)},
                          UNPARSEABLE: unparseable},
        },
        **center,
        "answer_bias": bias,
        "accuracy_by_area": by_area,
        "accuracy_grid": _grid(task, by_area),
        "bootstrap": {"samples": bootstrap, "seed": seed, "level": 0.95},
    }


def _answer_bias(task: str, labels: list[str], support: np.ndarray, predicted: np.ndarray, n: int) -> dict:
    """Share of one answer among the predictions and among the true answers: `center` for area tasks (the
    centre bias), `left` / `above` for relation tasks, the first-said option for depth. Unparseable answers
    count in n, so a model that answers nothing has no bias toward any label."""
    label = labels[0] if task in RELATION_TASKS or task == "mc" else "center"
    i = labels.index(label)
    true, pred = _ratio(support[i], n), _ratio(predicted[i], n)
    return {"label": label, "true": true, "predicted": pred, "bias": None if n == 0 else pred - true}


def accuracy_by_area9(areas_and_correct: Iterable[tuple[str, bool]]) -> dict:
    """Accuracy per true nine-way area, for the three-way tasks whose targets say their area: shows whether
    'left' is answered as well at the top as at the bottom. Grid laid out as the image (3x3)."""
    hits: dict[str, list[int]] = {area: [0, 0] for area in AREAS}
    for area, correct in areas_and_correct:
        hits[area][0] += int(correct)
        hits[area][1] += 1
    by_area = {area: _ratio(h, n) for area, (h, n) in hits.items()}
    return {"accuracy_by_area9": by_area, "support_by_area9": {a: n for a, (_, n) in hits.items()},
            "accuracy_grid_area9": _grid("area9", by_area)}
