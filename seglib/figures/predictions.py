"""Prediction examples: test images with the expert's outline and each model's outline overlaid
(:func:`seglib.data.overlay.draw_overlay`: two colours, each line with a dark halo)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from seglib.data.overlay import EXPERT_RGB, HALO_RGB, LABELS, MODEL_RGB, draw_overlay
from seglib.figures.style import save

MAX_PX = 128


def _np(x) -> np.ndarray:
    """Tensor or array -> numpy array (no torch import needed)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _rgb(color: tuple[int, int, int]) -> tuple[float, ...]:
    return tuple(c / 255 for c in color)


def _step(h: int, w: int, max_px: int) -> int:
    return max(1, math.ceil(max(h, w) / max_px))


def to_rgb(image, step: int = 1) -> np.ndarray:
    """(3,H,W) uint8 or float in [0,1] -> (H/step, W/step, 3) float in [0,1]."""
    im = _np(image)[:, ::step, ::step].astype(float)
    if im.max(initial=0) > 1.0:
        im = im / 255.0
    return np.clip(im.transpose(1, 2, 0), 0.0, 1.0)


def _iou(pred: np.ndarray, true: np.ndarray) -> float:
    union = np.logical_or(pred, true).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, true).sum() / union)


def plot_predictions(images, masks, preds: dict, path=None, titles=None, max_px: int = MAX_PX):
    """One row per image: the image with its truth outline, then one panel per prediction.

    Args:
        images: (N,3,H,W) uint8 or float in [0,1] (tensor or array).
        masks: (N,1,H,W) truth, 0/1 or bool.
        preds: ``{label: (N,1,H,W) bool}``, e.g. ``{"UNet+BCE": logits > 0}``.
        path: if given, the figure is saved there as byte-stable SVG (``style.save``).
        titles: row names (e.g. image names), optional.
        max_px: images are downsampled by an integer stride to at most this many pixels a side.
    Returns:
        The ``Figure``; each prediction panel's title carries the image's IoU.
    """
    images, masks = _np(images), _np(masks).astype(bool)
    preds = {k: _np(v).astype(bool) for k, v in preds.items()}
    n, _, h, w = images.shape
    s = _step(h, w, max_px)
    ncol = 1 + len(preds)
    fig = Figure(figsize=(1.9 * ncol, 1.9 * n * h / w + 0.6))
    axes = fig.subplots(n, ncol, squeeze=False)
    for i in range(n):
        rgb, true = to_rgb(images[i], s), masks[i, 0, ::s, ::s]
        rgb = np.rint(rgb * 255).astype(np.uint8)
        panels = [("image + expert", draw_overlay(rgb, true, legend=False))]
        for label, p in preds.items():
            title = f"{label}\nIoU {_iou(p[i, 0], masks[i, 0]):.2f}"
            panels.append((title, draw_overlay(rgb, true, p[i, 0, ::s, ::s], legend=False)))
        for ax, (label, im) in zip(axes[i], panels):
            ax.imshow(im, interpolation="nearest")
            ax.set_title(label, fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
        if titles is not None:
            axes[i, 0].set_ylabel(str(titles[i]), fontsize=7)
    halo = [patheffects.Stroke(linewidth=3.5, foreground=_rgb(HALO_RGB)), patheffects.Normal()]
    handles = [Line2D([], [], color=_rgb(c), lw=2, label=f"{t} outline", path_effects=halo)
               for t, c in zip(LABELS, (EXPERT_RGB, MODEL_RGB))]  # fmt: skip
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    if path is not None:
        save(fig, Path(path))
    return fig
