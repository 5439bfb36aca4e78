"""Plots and comparisons of scored runs: accuracy heatmaps per true area (per true answer for relation
tasks: a 1x2 or 2x1 strip), a table of several runs (markdown + JSON), their heatmaps side by side, and exact
McNemar tests between runs on the same questions.

Reads run folders through `rundir.py` only; the scorer imports this module, never the reverse.
scipy and matplotlib (through `blender_scenes.plots`) are imported on first use: they are heavy and the
CLI stays fast. No bpy, no torch.
"""
from __future__ import annotations

import io
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from blender_scenes.errors import InputError
from blender_scenes.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from blender_scenes.labels import ALL_TASKS, AREAS
from blender_scenes.plots import pyplot

from .rundir import read_scored_run, short_name


def _grid_and_support(task_result: dict):
    """Accuracy grid to draw (3x3 by true area where known, else by the task's labels) and cell counts."""
    if "accuracy_grid_area9" in task_result:
        grid, labels, support = (task_result["accuracy_grid_area9"], AREAS, task_result["support_by_area9"])
    else:
        grid, labels, support = (task_result["accuracy_grid"], task_result["labels"],
                                 task_result["distribution"]["true"])
    array = np.array([[np.nan if v is None else v for v in row] for row in grid], dtype=float)
    return array, labels, support


def _draw_heatmap(ax, task_result: dict, title: str) -> Any:
    grid, labels, support = _grid_and_support(task_result)
    image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis")
    rows, cols = grid.shape
    for r in range(rows):
        for c in range(cols):
            label = labels[r * cols + c] if rows > 1 and cols > 1 else labels[r + c]
            value = grid[r, c]
            text = "n/a" if np.isnan(value) else f"{value:.2f}"
            ax.text(c, r, f"{text}\nn={support[label]}", ha="center", va="center", fontsize=8,
                    color="white" if np.isnan(value) or value < 0.6 else "black")
    if rows > 1 and cols > 1:   # the nine areas, laid out as the image
        xticks, yticks = ["left", "center", "right"], ["top", "center", "bottom"]
    else:                       # a strip: one tick per label along it
        xticks, yticks = (list(labels), [""]) if rows == 1 else ([""], list(labels))
    ax.set_xticks(range(cols), xticks)
    ax.set_yticks(range(rows), yticks)
    accuracy = task_result["accuracy"]
    ax.set_title(f"{title}\naccuracy {accuracy:.3f}" if accuracy is not None else title, fontsize=9)
    return image


def _png_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    return buffer.getvalue()


def write_heatmap(task_result: dict, path: str | Path, title: str = "") -> None:
    """PNG of accuracy per true area of one task (3x3 for area9/open), each cell with its count."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4, 4))
    image = _draw_heatmap(ax, task_result, title)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="accuracy")
    atomic_write_bytes(path, _png_bytes(fig))
    plt.close(fig)


def mcnemar_exact(a_correct: list[bool], b_correct: list[bool]) -> dict:
    """Exact McNemar test: two-sided binomial test on the discordant pairs (p = 1/2)."""
    from scipy.stats import binomtest

    only_a = sum(1 for a, b in zip(a_correct, b_correct) if a and not b)
    only_b = sum(1 for a, b in zip(a_correct, b_correct) if b and not a)
    discordant = only_a + only_b
    p_value = binomtest(only_a, discordant, 0.5).pvalue if discordant else 1.0
    return {"n": len(a_correct), "only_a_correct": only_a, "only_b_correct": only_b, "p_value": float(p_value)}


def _same_file(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and Path(a).resolve() == Path(b).resolve()


def _fmt(value: float | None, ci: list[float] | None = None) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.3f}"
    return f"{text} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else text


def compare_runs(run_dirs: list[str | Path], out_dir: str | Path) -> dict:
    """comparison.json, comparison.md and heatmaps.png of several scored runs, McNemar per pair and task."""
    if len(run_dirs) < 1:
        raise InputError("compare: expected at least one run directory")
    runs = [read_scored_run(d) for d in run_dirs]
    names = [r["name"] for r in runs]
    if len(set(names)) < len(names):  # same folder names under different parents: use the given paths
        names = [str(d) for d in run_dirs]
        for run, name in zip(runs, names):
            run["name"] = name
    out_dir = Path(out_dir)
    tasks = [t for t in ALL_TASKS if any(t in r["metrics"]["tasks"] for r in runs)]
    table, tests = _table(runs, tasks), _mcnemar_tests(runs, tasks)
    benchmarks = _benchmark_table(runs)
    result = {"runs": [{"name": r["name"], "dir": str(r["dir"]), "run": r["metrics"].get("run")} for r in runs],
              "table": table, "mcnemar": tests, "benchmarks": benchmarks, "heatmaps": "heatmaps.png"}
    atomic_write_json(out_dir / "comparison.json", result, indent=2)
    atomic_write_text(out_dir / "comparison.md", _markdown(table, tests) + _benchmark_markdown(benchmarks))
    _write_side_by_side(runs, tasks, out_dir / "heatmaps.png")
    return result


def _table(runs: list[dict], tasks: list[str]) -> list[dict]:
    """One row per run and task it answered: model, adapter, number of questions and the headline metrics."""
    table = []
    for run in runs:
        info = run["metrics"].get("run") or {}
        for task in tasks:
            result = run["metrics"]["tasks"].get(task)
            if result is None:
                continue
            table.append({
                "run": run["name"], "model": info.get("model"), "adapter": info.get("adapter"),
                "task": task, "n": result["n"], "accuracy": result["accuracy"],
                "accuracy_ci95": result["accuracy_ci95"], "macro_f1": result["macro_f1"],
                "macro_f1_ci95": result["macro_f1_ci95"], "unparseable_rate": result["unparseable_rate"],
                **_bias_columns(result),
            })
    return table


def _bias_columns(result: dict) -> dict:
    """The share of the task's bias label (center, left, above, first) predicted and true; metrics scored
    before relation tasks existed hold only `center_share`."""
    bias = result.get("answer_bias") or {"label": "center", **result["center_share"]}
    return {"bias_label": bias["label"], "bias_true": bias["true"], "bias_predicted": bias["predicted"]}


def _mcnemar_tests(runs: list[dict], tasks: list[str]) -> list[dict]:
    """McNemar per pair of runs and task both answered; unpaired (not tested) when their questions differ."""
    tests = []
    for a, b in combinations(runs, 2):
        for task in tasks:
            ids_a, ids_b = a["correct"].get(task), b["correct"].get(task)
            if not ids_a or not ids_b:
                continue
            entry = {"a": a["name"], "b": b["name"], "task": task,
                     # the same ids from two different files may differ in option order
                     "same_question_file": _same_file(a["metrics"].get("questions"), b["metrics"].get("questions"))}
            if set(ids_a) != set(ids_b):
                entry.update(paired=False, note="different questions; McNemar needs the same questions")
            else:
                order = sorted(ids_a)
                entry.update(paired=True, **mcnemar_exact([ids_a[i] for i in order], [ids_b[i] for i in order]))
            tests.append(entry)
    return tests


def _markdown(table: list[dict], tests: list[dict]) -> str:
    lines = [("| run | model | adapter | task | n | accuracy [95% CI] | macro-F1 [95% CI] | unparseable "
              "| answer share (pred / true) |"),
             "|---|---|---|---|---:|---|---|---:|---|"]
    for row in table:
        lines.append(
            f"| {row['run']} | {short_name(row['model']) if row['model'] else ''} "
            f"| {short_name(row['adapter']) if row['adapter'] else ''} | {row['task']} | {row['n']} "
            f"| {_fmt(row['accuracy'], row['accuracy_ci95'])} | {_fmt(row['macro_f1'], row['macro_f1_ci95'])} "
            f"| {_fmt(row['unparseable_rate'])} "
            f"| {row['bias_label']} {_fmt(row['bias_predicted'])} / {_fmt(row['bias_true'])} |")
    if tests:
        lines += ["", "Exact McNemar tests (two-sided binomial on discordant pairs)", "",
                  "| a | b | task | n | only a correct | only b correct | p-value |",
                  "|---|---|---|---:|---:|---:|---:|"]
        for t in tests:
            if t["paired"]:
                lines.append(f"| {t['a']} | {t['b']} | {t['task']} | {t['n']} | {t['only_a_correct']} "
                             f"| {t['only_b_correct']} | {t['p_value']:.4g} |")
            else:
                lines.append(f"| {t['a']} | {t['b']} | {t['task']} | | | | not paired ({t['note']}) |")
    return "\n".join(lines) + "\n"


def _benchmark_table(runs: list[dict]) -> list[dict]:
    """One row per run, benchmark and category value (metrics.json `benchmarks`), headline first."""
    rows = []
    for run in runs:
        for name, entry in sorted(run["metrics"].get("benchmarks", {}).items()):
            official = entry.get("official") or {}
            rows.append({"run": run["name"], "benchmark": name, "category": "all", "value": "", "n": entry["n"],
                         "accuracy": entry["accuracy"], "official": official.get("name"),
                         "official_value": official.get("value")})
            for key, values in sorted(entry["categories"].items()):
                for value, cell in sorted(values.items()):
                    rows.append({"run": run["name"], "benchmark": name, "category": key, "value": value,
                                 "n": cell["n"], "accuracy": cell["accuracy"]})
    return rows


def _benchmark_markdown(rows: list[dict]) -> str:
    if not rows:
        return ""
    lines = ["", "Public benchmarks (accuracy per category; the benchmark's own headline where it has one)", "",
             "| run | benchmark | category | value | n | accuracy | headline |", "|---|---|---|---|---:|---|---|"]
    for r in rows:
        headline = (f"{r['official']}: {_fmt(r['official_value'])}" if r.get("official") else "")
        lines.append(f"| {r['run']} | {r['benchmark']} | {r['category']} | {r['value']} | {r['n']} "
                     f"| {_fmt(r['accuracy'])} | {headline} |")
    return "\n".join(lines) + "\n"


def _write_side_by_side(runs: list[dict], tasks: list[str], path: Path) -> None:
    plt = pyplot()
    rows, cols = len(tasks), len(runs)
    fig, axes = plt.subplots(max(rows, 1), cols, figsize=(3.8 * cols, 3.6 * max(rows, 1)), squeeze=False)
    fig.subplots_adjust(wspace=0.4, hspace=0.4)
    image = None
    for r, task in enumerate(tasks):
        for c, run in enumerate(runs):
            ax = axes[r][c]
            result = run["metrics"]["tasks"].get(task)
            if result is None:
                ax.axis("off")
                continue
            image = _draw_heatmap(ax, result, f"{run['name']} ({task})")
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.03, pad=0.02, label="accuracy")
    atomic_write_bytes(path, _png_bytes(fig))
    plt.close(fig)
