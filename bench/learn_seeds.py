"""The spread of `bench/learn.py` over seeds (not a test): aggregates the JSON outputs of its runs.

    python bench/learn.py --seed 0 > s0.json; python bench/learn.py --seed 1 --work runs/learn-seed1 > s1.json; ...
    python bench/learn_seeds.py s0.json s1.json s2.json > bench/results/learn-seeds.json

Prints one JSON object: per seed the held-out-pair test accuracy, training CPU minutes and epochs, their mean,
min and max, and every run's full JSON (with its own command, seed and versions) under `runs`.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="JSON printed by bench/learn.py, one file per seed")
    args = parser.parse_args()
    runs = sorted((json.loads(path.read_text()) for path in args.runs), key=lambda r: r["provenance"]["seed"])
    accuracy = [r["test_accuracy"] for r in runs]
    print(json.dumps({
        "what": "bench/learn.py over seeds (each run's full JSON, with its command, under runs)",
        "seeds": [r["provenance"]["seed"] for r in runs],
        "test_accuracy": accuracy,
        "test_accuracy_mean": round(statistics.mean(accuracy), 4),
        "test_accuracy_min": min(accuracy), "test_accuracy_max": max(accuracy),
        "chance": runs[0]["chance"], "heldout_pairs": runs[0]["heldout_pairs"],
        "train_cpu_min": [round(r["training"]["train_cpu_s"] / 60, 2) for r in runs],
        "epochs_run": [r["training"]["epochs_run"] for r in runs],
        "runs": runs,
    }, indent=2))


if __name__ == "__main__":
    main()
