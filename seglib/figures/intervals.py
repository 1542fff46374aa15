"""Figures of the test results' spread: per-image distributions and cell means with intervals.

Built without pyplot like ``plots`` (see there); the numbers come from ``stats``.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from seglib.figures.style import color
from seglib.report.analysis import cell_label, display
from seglib.report.stats import LEVEL, best_cell, intervals, matrices, versus_best

SEED_MARKERS = ("o", "s", "^", "v", "D", "P")
METRIC_NAMES = {"score": "course score", "iou": "IoU", "dice": "Dice"}


def per_image_figure(runs: list[dict], metric: str = "iou") -> Figure | None:
    """Box and strip plot of the per-image test ``metric`` of every cell: one box per cell over
    all its seeds' images (median, quartiles, whiskers at 1.5 IQR), one dot per image and seed
    (marker by seed), the mean as a black bar. None when no run has per-image values."""
    xs = matrices(runs, metric)
    if not xs:
        return None
    keys = list(xs)
    nets = list(dict.fromkeys(n for n, _ in keys))
    pos = [i + 0.6 * nets.index(n) for i, (n, _) in enumerate(keys)]  # a gap between nets
    fig = Figure(figsize=(max(6.4, 0.62 * len(keys) + 1.5), 4.4))
    fig.subplots_adjust(left=0.08, right=0.99, bottom=0.25, top=0.9)
    ax = fig.add_subplot()
    seeds, n_img = max(x.shape[0] for x in xs.values()), next(iter(xs.values())).shape[1]
    ax.set(
        title=f"Test {METRIC_NAMES[metric]} per image ({n_img} images"
        + (f" x up to {seeds} seeds per cell)" if seeds > 1 else " per cell)"),
        ylabel=f"test {METRIC_NAMES[metric]} per image",
    )
    box = ax.boxplot(
        [xs[k].ravel() for k in keys], positions=pos, widths=0.6, showfliers=False,
        patch_artist=True, medianprops=dict(color="#333333"),
    )  # fmt: skip
    for patch, (_, loss) in zip(box["boxes"], keys):
        patch.set(facecolor=color(loss), alpha=0.35, edgecolor=color(loss))
    jitter = np.linspace(-0.22, 0.22, n_img)
    for p, k in zip(pos, keys):
        for s, row in enumerate(xs[k]):
            ax.scatter(p + jitter, row, s=5, marker=SEED_MARKERS[s % 6], color="#444444",
                       alpha=0.45, linewidths=0, rasterized=True)  # fmt: skip
        ax.plot([p - 0.3, p + 0.3], [xs[k].mean()] * 2, color="black", lw=1.6)
    ax.set_xticks(pos, [cell_label(*k) for k in keys], rotation=45, ha="right", fontsize=8)
    low = min(float(x.min()) for x in xs.values())
    ax.set_ylim(max(0.0, np.floor(10 * low) / 10 - 0.15) - 0.02, 1.02)
    ax.grid(axis="y", alpha=0.3)
    handles = [Line2D([], [], color="black", lw=1.6, label="mean")]
    handles += [
        Line2D([], [], ls="", marker=SEED_MARKERS[s % 6], color="#444444", label=f"seed {s + 1}")
        for s in range(seeds)
    ]
    handles += [Patch(color=color(lo), alpha=0.35, label=display(lo)) for lo in _losses(keys)]
    ax.legend(handles=handles, loc="lower left", fontsize="small", ncol=len(handles) // 2 + 1)
    return fig


def _losses(keys) -> list[str]:
    return list(dict.fromkeys(lo for _, lo in keys))


def interval_figure(runs: list[dict], metrics=("score", "iou")) -> Figure | None:
    """One panel per metric, one row per cell: the mean test value and its bootstrap interval
    (``stats``). The best cell is black with its interval shaded; a filled dot marks a cell
    whose paired difference to the best has an interval containing 0 (indistinguishable), an
    open dot a cell distinguishably below. None when no run has per-image values."""
    panels = [(m, intervals(runs, m)) for m in metrics]
    if not panels[0][1]:
        return None
    keys = list(panels[0][1])
    height = 0.32 * len(keys) + 1.8
    fig = Figure(figsize=(4.0 * len(metrics) + 1.2, height))
    fig.subplots_adjust(left=0.2, right=0.98, bottom=1.0 / height, top=1 - 0.55 / height)
    axes = fig.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
    y = np.arange(len(keys))[::-1]
    for ax, (metric, iv) in zip(axes, panels):
        best, vs = best_cell(runs, metric), versus_best(runs, metric)
        ax.axvspan(iv[best].low, iv[best].high, color="#dddddd", zorder=0)
        ax.axvline(iv[best].mean, color="black", lw=0.8, ls="--", zorder=1)
        for yi, k in zip(y, keys):
            c = "black" if k == best else color(k[0])
            same = k == best or not vs[k].distinct
            ax.errorbar(iv[k].mean, yi, xerr=[[iv[k].mean - iv[k].low], [iv[k].high - iv[k].mean]],
                        fmt="o", color=c, mfc=c if same else "white", capsize=2, lw=1.2)  # fmt: skip
        ax.set(title=f"Test {METRIC_NAMES[metric]}", xlabel=f"mean test {METRIC_NAMES[metric]}")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, [cell_label(*k) for k in keys], fontsize=8)
    handles = [
        Line2D([], [], marker="o", color="black", label=f"best, {LEVEL:.0%} interval (shaded)"),
        Line2D([], [], marker="o", color="#777777", label="indistinguishable from best"),
        Line2D([], [], marker="o", color="#777777", mfc="white", label="below best (paired)"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize="small", frameon=False)
    fig.suptitle(
        f"Cell means with {LEVEL:.0%} intervals (bootstrap over test images and seeds)",
        fontsize=10,
    )
    return fig
