"""The report's pictures as PNG bytes: area and placement-cell heatmaps, bar charts per factor, a visibility
histogram and a grid of sample images with their boxes and labels drawn. matplotlib (through
blender_scenes.plots, which imports it on first use) and OpenCV only; nothing of the audit."""
from __future__ import annotations

import io
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np

from ..plots import pyplot

SPLIT_COLORS = {"train": "#4C72B0", "val": "#DD8452", "test": "#55A868"}


@dataclass(frozen=True)
class Sample:
    """One image of the sample grid: its file (relative to the dataset root), each object's box and role
    (None: nothing to draw), and up to two caption lines."""
    image: str
    boxes: list[tuple[list[float] | None, str]]
    caption: list[str]


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    pyplot().close(fig)
    return buf.getvalue()


def heatmaps(grids: dict[str, list[list[int]]], title: str, annotate: bool = True,
             xlabels=None, ylabels=None) -> bytes:
    """One heatmap per split (key), counts written in the cells."""
    plt = pyplot()
    n = max(1, len(grids))
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.4), squeeze=False, layout="constrained")
    for ax, (name, grid) in zip(axes[0], grids.items()):
        g = np.array(grid, dtype=float)
        im = ax.imshow(g, cmap="viridis", vmin=0, vmax=max(1.0, g.max()))
        ax.set_title(name, fontsize=10)
        ax.set_xticks(range(g.shape[1]), xlabels or [str(i) for i in range(g.shape[1])], fontsize=7)
        ax.set_yticks(range(g.shape[0]), ylabels or [str(i) for i in range(g.shape[0])], fontsize=7)
        if annotate and g.size <= 144:
            for (i, j), v in np.ndenumerate(g):
                ax.text(j, i, f"{int(v)}", ha="center", va="center", fontsize=7 if g.size > 9 else 10,
                        color="white" if v < 0.6 * max(1.0, g.max()) else "black")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(title, fontsize=11)
    return _png(fig)


def factor_bars(per_split: dict[str, dict[str, dict[str, int]]], title: str) -> bytes:
    """per_split[split][factor] = {level: count}: one panel per factor, bars grouped by split."""
    plt = pyplot()
    factors = list(dict.fromkeys(f for d in per_split.values() for f in d))
    n = max(1, len(factors))
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.0 * rows), squeeze=False, layout="constrained")
    for ax in axes.flat[n:]:
        ax.axis("off")
    splits = list(per_split)
    for ax, factor in zip(axes.flat, factors):
        levels = list(dict.fromkeys(lv for d in per_split.values() for lv in d.get(factor, {})))
        x = np.arange(len(levels))
        w = 0.8 / max(1, len(splits))
        for i, s in enumerate(splits):
            vals = [per_split[s].get(factor, {}).get(lv, 0) for lv in levels]
            ax.bar(x + i * w - 0.4 + w / 2, vals, w, label=s, color=SPLIT_COLORS.get(s))
        ax.set_xticks(x, levels, rotation=45 if len(levels) > 4 else 0, ha="right" if len(levels) > 4 else "center",
                      fontsize=7)
        ax.set_title(factor, fontsize=10)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=11)
    return _png(fig)


def histogram(per_split: dict[str, list[int]], edges: list[float], title: str, xlabel: str) -> bytes:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
    labels = [f"{a:g}-{b:g}" for a, b in pairwise(edges)]
    x = np.arange(len(labels))
    w = 0.8 / max(1, len(per_split))
    for i, (s, counts) in enumerate(per_split.items()):
        ax.bar(x + i * w - 0.4 + w / 2, counts, w, label=s, color=SPLIT_COLORS.get(s))
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_yscale("symlog")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=11)
    return _png(fig)


def sample_grid(samples: list[Sample], root: Path, tile: int = 240, columns: int = 4) -> bytes | None:
    """The samples' images with their boxes drawn in green (target) and orange (others), the caption (the
    target's label) written under each image."""
    tiles = []
    for s in samples:
        img = cv2.imread(str(root / s.image), cv2.IMREAD_COLOR)
        if img is None:
            continue
        h, w = img.shape[:2]
        scale = tile / max(h, w)
        img = cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_NEAREST)
        canvas = np.full((tile + 34, tile, 3), 255, np.uint8)
        canvas[:img.shape[0], :img.shape[1]] = img
        for box, role in reversed(s.boxes):   # target drawn last, on top
            if not box:
                continue
            x, y, bw, bh = (v * scale for v in box)
            color = (0, 220, 0) if role == "target" else (0, 140, 255)
            cv2.rectangle(canvas, (int(x), int(y)), (round(x + bw) - 1, round(y + bh) - 1), color,
                          2 if role == "target" else 1)
        for i, line in enumerate(s.caption[:2]):
            cv2.putText(canvas, line[:36], (3, tile + 13 + 15 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                        cv2.LINE_AA)
        tiles.append(canvas)
    if not tiles:
        return None
    columns = min(columns, len(tiles))
    while len(tiles) % columns:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.hstack([np.pad(t, ((4, 4), (4, 4), (0, 0)), constant_values=255) for t in tiles[i:i + columns]])
            for i in range(0, len(tiles), columns)]
    ok, buf = cv2.imencode(".png", np.vstack(rows))
    return buf.tobytes() if ok else None
