"""Overlays a person can read on any dermoscopy image: the expert's and the model's lesion
outlines as thick lines in two colours, each with a dark halo, and a small legend.

Yellow and magenta read on pink or beige skin, on the teal calibration disc of some
dermatoscopes and on dark lesions, and stay distinct from each other for the common colour
vision deficiencies; the near-black halo around every line keeps it visible where the image
itself is yellow or pink. The expert's outline is drawn just inside the expert mask, the
model's just outside its mask, so where the two agree both lines show side by side.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from seglib.data.imageio import outline

EXPERT_RGB = (255, 221, 0)
MODEL_RGB = (255, 0, 200)
HALO_RGB = (16, 16, 16)
LABELS = ("expert", "model")


def line_width(shape: tuple[int, ...]) -> int:
    """Outline width in pixels: about 1/150 of the longer side, at least 2."""
    return max(2, round(max(shape[:2]) / 150))


def outline_bands(truth: np.ndarray, pred: np.ndarray | None, width: int):
    """``(expert band, model band, halo)`` (H, W) bool: the ``width`` px just inside ``truth``,
    the ``width`` px just outside ``pred`` (empty without ``pred``), and the pixels within
    ``max(1, width // 2)`` px of either band that are in neither."""
    inner = outline(truth, width)
    outer = np.zeros_like(inner)
    if pred is not None and pred.any():
        outer = ndimage.binary_dilation(pred, iterations=width) & ~pred
    lines = inner | outer
    halo = ndimage.binary_dilation(lines, iterations=max(1, width // 2)) & ~lines
    return inner, outer, halo


def draw_overlay(image: np.ndarray, truth: np.ndarray, pred: np.ndarray | None = None,
                 legend: bool = True, width: int | None = None) -> np.ndarray:  # fmt: skip
    """``image`` (H, W, 3) uint8 with the expert outline of ``truth`` in :data:`EXPERT_RGB` and
    the model's of ``pred`` in :data:`MODEL_RGB` (both (H, W) bool; ``pred`` optional), every
    line haloed in :data:`HALO_RGB`, and the legend in the top-left corner if ``legend``."""
    width = width or line_width(image.shape)
    inner, outer, halo = outline_bands(truth.astype(bool), _bool(pred), width)
    out = np.array(image, dtype=np.uint8)
    out[halo], out[inner], out[outer] = HALO_RGB, EXPERT_RGB, MODEL_RGB
    if legend:
        out = add_legend(out, LABELS if pred is not None else LABELS[:1])
    return out


def _bool(mask):
    return None if mask is None else mask.astype(bool)


def add_legend(image: np.ndarray, labels=LABELS) -> np.ndarray:
    """``image`` with a dark box in its top-left corner naming each colour: a line in
    :data:`EXPERT_RGB` then "expert", a line in :data:`MODEL_RGB` then "model"."""
    h, w = image.shape[:2]
    size = max(8, round(max(h, w) / 40))
    font = ImageFont.load_default(size=size)
    im = Image.fromarray(image)
    draw = ImageDraw.Draw(im)
    pad, swatch, rows = max(2, size // 3), 2 * size, len(labels)
    text_w = max(draw.textlength(t, font=font) for t in labels)
    box = (0, 0, round(3 * pad + swatch + text_w), (size + pad) * rows + pad)
    draw.rectangle(box, fill=HALO_RGB)
    for i, (label, rgb) in enumerate(zip(labels, (EXPERT_RGB, MODEL_RGB))):
        y = pad + i * (size + pad) + size // 2
        draw.line((pad, y, pad + swatch, y), fill=rgb, width=max(2, size // 4))
        draw.text((2 * pad + swatch, y), label, fill=rgb, font=font, anchor="lm")
    return np.asarray(im).copy()
