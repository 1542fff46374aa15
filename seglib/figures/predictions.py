"""Prediction examples: test images with the truth outline and each model's prediction overlaid."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from seglib.data.imageio import tint
from seglib.figures.style import save

TRUTH_COLOR = "#ffe600"
PRED_COLOR = (0.0, 0.75, 1.0)
PRED_ALPHA = 0.45
MAX_PX = 128


def _np(x) -> np.ndarray:
    """Tensor or array -> numpy array (no torch import needed)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


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
        panels = [("image + truth", rgb)]
        for label, p in preds.items():
            pm = p[i, 0, ::s, ::s]
            panels.append(
                (
                    f"{label}\nIoU {_iou(p[i, 0], masks[i, 0]):.2f}",
                    tint(rgb, pm, PRED_COLOR, PRED_ALPHA),
                )
            )
        for ax, (label, im) in zip(axes[i], panels):
            ax.imshow(im, interpolation="nearest")
            if true.any() and not true.all():
                ax.contour(true, levels=[0.5], colors=TRUTH_COLOR, linewidths=1.0)
            ax.set_title(label, fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
        if titles is not None:
            axes[i, 0].set_ylabel(str(titles[i]), fontsize=7)
    handles = [
        Line2D([], [], color=TRUTH_COLOR, lw=1.5, label="truth outline"),
        Patch(color=PRED_COLOR, alpha=PRED_ALPHA, label="prediction"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    if path is not None:
        save(fig, Path(path))
    return fig
