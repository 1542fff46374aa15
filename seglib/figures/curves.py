"""SVG figures of a results folder, named as in the original report (see DESIGN.md).

Every builder returns a ``matplotlib.figure.Figure`` made without pyplot, so nothing touches the
global backend or figure manager (safe under Jupyter's inline backend; no GUI needed). ``save``
writes byte-stable SVG (fixed ``svg.hashsalt``, no date or creator metadata). In a notebook,
either show the returned figures or the written files with ``IPython.display.SVG``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from seglib.figures.intervals import interval_figure, per_image_figure
from seglib.figures.style import color, save, tag_data
from seglib.report.analysis import (
    cell_label,
    cell_rank,
    cells,
    display,
    losses_of,
    nets_of,
    run_key,
    stack,
)
from seglib.store import dataset_of, load_runs

SERIES_COLORS = {"train": "#7f7f7f", "val": "#1f3b73", "val_iou": "#2a9d8f", "best": "#444444"}
ZOOM_K, ZOOM_SKIP, ZOOM_Q = 3.0, 0.25, 95.0


def _tail(values, skip: float) -> np.ndarray:
    v = np.atleast_2d(np.asarray(values, dtype=float))
    return v[:, int(v.shape[1] * skip) :]


def zoom_limits(values, skip: float = ZOOM_SKIP, q: float = ZOOM_Q) -> tuple[float, float]:
    """y-range of the zoomed view: ``[min, q-th percentile]`` of the epochs after the first
    ``skip`` fraction (losses spike upward, so the top is robust and the bottom exact). The
    percentile is an observed value (``method="lower"``), so a one-epoch spike never sets it.
    ``values``: one curve or several of equal length (rows); NaN ignored."""
    tail = _tail(values, skip)
    return float(np.nanmin(tail)), float(np.nanpercentile(tail, q, method="lower"))


def needs_zoom(values, k: float = ZOOM_K, skip: float = ZOOM_SKIP, q: float = ZOOM_Q) -> bool:
    """True when the full-range view hides the trend of a loss curve.

    Rule: with at least 8 epochs, zoom when the full y-range (max - min over all epochs and
    curves) is more than ``k`` times the width of ``zoom_limits`` (min to 95th percentile of the
    epochs after the first quarter), i.e. when early epochs or a spike dominate the y-axis.
    A flat tail (zero width) never zooms.
    """
    v = np.atleast_2d(np.asarray(values, dtype=float))
    if v.shape[1] < 8 or np.isnan(v).all() or np.isnan(_tail(v, skip)).all():
        return False
    lo, hi = zoom_limits(v, skip, q)
    return hi - lo > 0 and float(np.nanmax(v) - np.nanmin(v)) > k * (hi - lo)


def _band(ax, epochs, values, label, col, **kw) -> None:
    """Mean line; with several runs (rows) also a min-max band."""
    n = int((~np.isnan(values)).any(axis=1).sum())
    if n > 1:
        label = f"{label} (mean of {n}, band min-max)"
        ax.fill_between(epochs, np.nanmin(values, 0), np.nanmax(values, 0), color=col, alpha=0.2)
    ax.plot(epochs, np.nanmean(values, 0), color=col, label=label, **kw)


def _axes(title: str, ylabel: str, size=(6.4, 4.0)):
    fig = Figure(figsize=size)
    fig.subplots_adjust(left=0.11, right=0.97, bottom=0.12, top=0.92)  # fixed: tight_layout is slow
    ax = fig.add_subplot()
    ax.set(title=title, xlabel="epoch", ylabel=ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def _finish(fig, ax, loc: str = "best") -> Figure:
    ax.legend(loc=loc, fontsize="small")
    return fig


def _loss_curves(runs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    e, tr = stack(runs, "train_loss")
    _, va = stack(runs, "val_loss")
    return e, tr, va


def loss_figure(runs: list[dict], zoom: bool = False) -> Figure:
    """Train and val loss per epoch of one (net, loss) cell (all its seeds).

    ``zoom``: only the epochs after the first quarter, y-limits from ``zoom_limits``.
    """
    net, loss, _ = run_key(runs[0])
    e, tr, va = _loss_curves(runs)
    title = f"{cell_label(net, loss)}: loss" + (" (zoom)" if zoom else "")
    fig, ax = _axes(title, f"{display(loss)} loss")
    _band(ax, e, tr, "train loss", SERIES_COLORS["train"], ls="--")
    _band(ax, e, va, "val loss", SERIES_COLORS["val"])
    if zoom and len(e):
        both = np.vstack([tr, va])
        lo, hi = zoom_limits(both)
        pad = 0.05 * (hi - lo) or 0.05 * abs(hi) or 0.05
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlim(e[int(len(e) * ZOOM_SKIP)], e[-1])
    return _finish(fig, ax)


def loss_subset_figure(runs: list[dict]) -> Figure | None:
    """Zoomed loss view of one cell, or None when ``needs_zoom`` says the full view suffices."""
    _, tr, va = _loss_curves(runs)
    return loss_figure(runs, zoom=True) if needs_zoom(np.vstack([tr, va])) else None


def _best_epochs(runs: list[dict]) -> list[int]:
    """Best epoch per run: test.json's ``best_epoch``, else the epoch of max val IoU."""
    out = []
    for r in runs:
        if r.get("test") and r["test"].get("best_epoch") is not None:
            out.append(int(r["test"]["best_epoch"]))
        else:
            e, v = stack([r], "val_iou")
            if len(e) and not np.isnan(v).all():
                out.append(int(e[np.nanargmax(v[0])]))
    return sorted(set(out))


def score_figure(runs: list[dict]) -> Figure:
    """Val course score, val IoU and train IoU per epoch of one cell; best epoch(s) marked."""
    net, loss, _ = run_key(runs[0])
    fig, ax = _axes(f"{cell_label(net, loss)}: score", "course score / IoU")
    e, vs = stack(runs, "val_score")
    _band(ax, e, vs, "val course score", SERIES_COLORS["val"])
    _band(ax, *stack(runs, "val_iou"), "val IoU", SERIES_COLORS["val_iou"], ls=":")
    _band(ax, *stack(runs, "train_iou"), "train IoU", SERIES_COLORS["train"], ls="--")
    best = _best_epochs(runs)
    for i, b in enumerate(best):
        label = "best epoch " + ", ".join(map(str, best)) if i == 0 else None
        ax.axvline(b, color=SERIES_COLORS["best"], ls="-.", lw=0.8, label=label)
    ax.set_ylim(-0.02, 1.02)
    return _finish(fig, ax, loc="lower right")


def group_figure(runs: list[dict], net: str | None = None, loss: str | None = None) -> Figure:
    """Val course score of every loss for one ``net``, or of every net for one ``loss``."""
    groups = cells(runs)
    if net is not None:
        lines = [(lo, rs) for (n, lo), rs in groups.items() if n == net]
        title = f"{display(net)}: val course score by loss"
    else:
        lines = [(n, rs) for (n, lo), rs in groups.items() if lo == loss]
        title = f"{display(loss)}: val course score by net"
    fig, ax = _axes(title, "val course score")
    for key, rs in lines:
        _band(ax, *stack(rs, "val_score"), display(key), color(key))
    ax.set_ylim(-0.02, 1.02)
    return _finish(fig, ax, loc="lower right")


def best_figure(runs: list[dict]) -> Figure:
    """Val course score of the best cell per net (by ``cell_rank``); the best overall is bold."""
    groups = cells(runs)
    per_net = {}
    for (net, loss), rs in groups.items():
        if net not in per_net or cell_rank(rs) > cell_rank(groups[per_net[net]]):
            per_net[net] = (net, loss)
    top = max(per_net.values(), key=lambda k: cell_rank(groups[k]), default=None)
    fig, ax = _axes("Best run per net: val course score", "val course score")
    for key in per_net.values():
        done, value = cell_rank(groups[key])
        label = cell_label(*key) + (f" (test {value:.3f})" if done else "")
        label += " - best" if key == top else ""
        lw = 2.5 if key == top else 1.2
        _band(ax, *stack(groups[key], "val_score"), label, color(key[0]), lw=lw)
    ax.set_ylim(-0.02, 1.02)
    return _finish(fig, ax, loc="lower right")


def figures(runs: list[dict]) -> dict[str, Figure]:
    """All result figures (no predictions) by file name, in a fixed order; the two test-spread
    figures of ``statplots`` only where the runs carry per-image test metrics. Figures of data
    other than PH2 name it (``style.tag_data``)."""
    runs = [r for r in runs if r.get("history")]
    groups = cells(runs)
    out: dict[str, Figure] = {}
    for (net, loss), rs in groups.items():
        out[f"{net}_{loss}_loss.svg"] = loss_figure(rs)
        out[f"{net}_{loss}_score.svg"] = score_figure(rs)
        sub = loss_subset_figure(rs)
        if sub is not None:
            out[f"{net}_{loss}_loss_subset.svg"] = sub
    for net in nets_of(runs):
        out[f"{net}_score.svg"] = group_figure(runs, net=net)
    for loss in losses_of(runs):
        out[f"{loss}_score.svg"] = group_figure(runs, loss=loss)
    if groups:
        out["best_score.svg"] = best_figure(runs)
    for name, fig in (
        ("test_intervals.svg", interval_figure(runs)),
        ("test_iou_per_image.svg", per_image_figure(runs, "iou")),
    ):
        if fig is not None:
            out[name] = fig
    dataset = dataset_of(runs)
    return {name: tag_data(fig, dataset) for name, fig in out.items()}


def write_all(out, diag) -> list[Path]:
    """Write every figure of the results folder ``out`` into ``diag``; return the paths.

    A stale ``<net>_<loss>_loss_subset.svg`` whose cell no longer needs a zoom is removed.
    """
    diag = Path(diag)
    figs = figures(load_runs(out))
    paths = [save(fig, diag / name) for name, fig in figs.items()]
    for name in figs:
        stale = diag / name.replace("_loss.svg", "_loss_subset.svg")
        if name.endswith("_loss.svg") and stale.name not in figs:
            stale.unlink(missing_ok=True)
    return paths
