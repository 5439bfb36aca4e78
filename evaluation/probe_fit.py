"""The linear probe itself: per layer, a linear SVM (C = 1, class-balanced, on standardized features) that
reads the correct answer from hidden states, scored by seeded stratified k-fold cross-validation, beside the
same probe on permuted labels (the control). Accuracy is over the out-of-fold predictions of all records, with
a 95% interval from a seeded bootstrap of those predictions (with 3 folds an interval over folds would rest on
three numbers).

numpy and scikit-learn only: no torch, no model, nothing of ours but the error type, so it is tested on
synthetic features in milliseconds.
"""
from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np

from blender_scenes.errors import InputError

BOOTSTRAP = 1000
CI_METHOD = f"percentile bootstrap ({BOOTSTRAP} resamples) of the out-of-fold predictions"


@dataclass(frozen=True)
class LayerScore:
    layer: int
    accuracy: float
    ci: tuple[float, float]

    def as_json(self) -> dict:
        return {"layer": self.layer, "accuracy": round(self.accuracy, 4), "ci": [round(v, 4) for v in self.ci]}


@dataclass(frozen=True)
class ProbeFit:
    chance: float
    layers: list[LayerScore]
    control: list[LayerScore]
    unconverged: int  # fits that hit the iteration limit (reported, not hidden)


def check_folds(labels: list[str], folds: int, source: str) -> None:
    """Every answer needs at least `folds` records, else stratified folds cannot be built."""
    if folds < 2:
        raise InputError(f"--folds {folds}: expected at least 2")
    counts = Counter(labels)
    if len(counts) < 2:
        raise InputError(f"{source}: field 'answer': one distinct answer only (expected at least 2 to probe)")
    rare = sorted(label for label, count in counts.items() if count < folds)
    if rare:
        raise InputError(f"{source}: field 'answer': {', '.join(repr(r) for r in rare)} has fewer than {folds} "
                         f"records (expected at least --folds records per answer; lower --folds or add records)")


def fit_probes(features: np.ndarray, labels: list[str], folds: int = 3, seed: int = 0) -> ProbeFit:
    """`features` is (records, layers, hidden); returns the score of every layer and of its control."""
    from sklearn.model_selection import StratifiedKFold

    check_folds(labels, folds, "labels")
    y = np.asarray(labels)
    # the folds are drawn once from the true labels: the control differs from the probe in its labels only
    splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(features[:, 0], y))
    shuffled = np.random.default_rng(seed).permutation(y)
    unconverged = 0
    layers, control = [], []
    for layer in range(features.shape[1]):
        for target, out in ((y, layers), (shuffled, control)):
            predicted, misses = out_of_fold(features[:, layer], target, splits)
            unconverged += misses
            out.append(score(layer, predicted == target, seed))
    return ProbeFit(chance=1 / len(set(labels)), layers=layers, control=control, unconverged=unconverged)


def out_of_fold(x: np.ndarray, y: np.ndarray, splits) -> tuple[np.ndarray, int]:
    """Each record's prediction by the probe fitted on the other folds, and how many fits did not converge."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    predicted = np.empty_like(y)
    misses = 0
    for train, test in splits:
        if len(set(y[train])) == 1:   # the shuffled control can leave one label in a small training fold
            predicted[test] = y[train][0]
            continue
        # liblinear visits the samples in a random order: seeded, so that the same states give the same probe
        # (an unseeded order changed the predictions where classes tie, e.g. at layer 0, one token's embedding)
        probe = make_pipeline(StandardScaler(), LinearSVC(C=1, class_weight="balanced", max_iter=10000,
                                                          random_state=0))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            probe.fit(x[train], y[train])
        misses += any(issubclass(w.category, ConvergenceWarning) for w in caught)
        predicted[test] = probe.predict(x[test])
    return predicted, misses


def score(layer: int, correct: np.ndarray, seed: int) -> LayerScore:
    """Accuracy of the out-of-fold predictions with its seeded percentile-bootstrap 95% interval."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(correct), size=(BOOTSTRAP, len(correct)))
    means = correct[draws].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return LayerScore(layer=layer, accuracy=float(correct.mean()), ci=(float(low), float(high)))
