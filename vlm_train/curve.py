"""The training curve, OUT/train_curve.png: train and validation loss per epoch with the best epoch marked, drawn
from the per-epoch rows of train_stats.json (`train.epoch_stats`). The same rows give the same bytes: a fixed
size and dpi, matplotlib's default style whatever the user's matplotlibrc, no version or date in the file.
matplotlib through blender_scenes.plots; no torch, nothing else of vlm_train."""
from __future__ import annotations

import math
from pathlib import Path

from blender_scenes.files import atomic_write_bytes
from blender_scenes.plots import png_bytes, pyplot

CURVE = "train_curve.png"
SIZE_INCHES = (6.4, 4.0)
DPI = 100                 # 640 x 400 pixels
TRAIN_COLOR, VAL_COLOR, BEST_COLOR = "#1f77b4", "#ff7f0e", "#2ca02c"


def best_epoch(epochs: list[dict]) -> int | None:
    """The epoch with the lowest validation loss, the first of equal ones (as the Trainer keeps its best
    checkpoint); None without validation."""
    scored = [e for e in epochs if e.get("val_loss") is not None]
    return min(scored, key=lambda e: e["val_loss"])["epoch"] if scored else None


def draw_curve(epochs: list[dict], best: int | None) -> bytes:
    """PNG bytes: train loss and validation loss (where evaluated) per epoch, the best epoch starred."""
    plt = pyplot()
    with plt.style.context("default"):
        fig, ax = plt.subplots(figsize=SIZE_INCHES)
        _line(ax, epochs, "train_loss", TRAIN_COLOR, "o-", "train loss")
        _line(ax, epochs, "val_loss", VAL_COLOR, "s-", "validation loss")
        row = next((e for e in epochs if e["epoch"] == best and e.get("val_loss") is not None), None)
        if row is not None:
            ax.axvline(best, color="grey", linestyle="--", linewidth=1)
            ax.plot([best], [row["val_loss"]], "*", color=BEST_COLOR, markersize=16,
                    label=f"best: epoch {best} (val loss {row['val_loss']:.4g})")
        ax.xaxis.get_major_locator().set_params(integer=True)   # epochs are whole numbers
        ax.set(xlabel="epoch", ylabel="loss", title="training curve")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
        fig.tight_layout()
        return png_bytes(fig, DPI)


def _line(ax, epochs: list[dict], key: str, color: str, style: str, label: str) -> None:
    points = [(e["epoch"], e[key]) for e in epochs if e.get(key) is not None and math.isfinite(e[key])]
    if points:
        ax.plot(*zip(*points), style, color=color, label=label)


def write_curve(stats: dict, path: str | Path) -> Path:
    """Draw the curve of `stats` (train_stats.json's content; its best_epoch, else the lowest validation loss so
    far) into `path`, atomically."""
    epochs = stats.get("epochs") or []
    best = stats.get("best_epoch", best_epoch(epochs))
    atomic_write_bytes(path, draw_curve(epochs, best))
    return Path(path)
