"""Inference pipelines: what happens around the net when a mask is predicted for a whole photo.

``plain`` resizes the photo to the training size, predicts (with test-time augmentation) and
thresholds the logits resized to the photo. ``robust`` (the shipped model's, chosen on PH2 val
with the robustness suite, docs/explanation/robustness.md) adds four steps aimed at photos from other
dermoscopes:

1. exposure: the photo's brightness is scaled so the median luminance of its field of view
   comes within a factor ``exposure_band`` of the mean luminance of the training images (the
   checkpoint's normalisation mean), a grey-level gain limited to 0.5-2 (a global gain is the
   model of exposure in :func:`seglib.robustness.artefacts.exposure`);
2. several input sizes (``scales`` times the training size), logits averaged: a larger input
   draws finer borders at full resolution, the training size keeps the context (the net alone at
   1.5x took dark field-of-view borders for lesion on val);
3. the largest connected component only: a sticker or dark border predicted as a second region
   goes away (the usual post-processing of lesion segmentation, e.g. Codella et al. 2019,
   "Skin lesion analysis toward melanoma detection 2018", arXiv:1902.03368); largest by
   summed confidence margin ``2p - 1`` weighted towards the frame centre
   (``component="margin"``: a small lesion in the middle outweighs a larger disc or dark corner
   at the edge, and a flat region barely above 1/2 weighs almost nothing), or by summed
   probability weighted towards the centre (``"centre"``), or by area or summed probability;
4. zoom-in refinement: where the lesion (or, when no pixel passes 0.5, the most likely region
   above ``seed_prob``) is small in the frame, the window around it (``zoom`` times its box,
   the frame's aspect) is predicted again at the input size and replaces the coarse mask, so a
   lesion covering 1% of a photo is segmented at the scale PH2 lesions are seen in training
   (coarse-to-fine cropping as in detection-then-segmentation pipelines).

The functions here are pure array geometry; :func:`seglib.infer.predict.predict_mask` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, special

LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601 luma weights
RULES = ("area", "mass", "centre", "margin")  # how step 3 compares components


@dataclass(frozen=True)
class Pipeline:
    """Settings of an inference pipeline (the defaults are ``plain``)."""

    scales: tuple[float, ...] = (1.0,)  # input sides / training size; logits averaged
    exposure: bool = False  # scale brightness to the training mean (step 1)
    exposure_band: float = 1.0  # ... only as far as into [mean / band, mean * band]
    largest: bool = False  # keep the largest connected component (step 3)
    zoom: float = 0.0  # window side / lesion box side; 0 = no refinement (step 4)
    zoom_max: float = 0.8  # no refinement when the window would cover this much of the frame
    zoom_min: float = 0.15  # the window covers at least this fraction of each side
    seed_prob: float = 0.1  # with an empty mask, refine around the likeliest region above this
    component: str = "area"  # step 3 keeps the largest component by: area, mass, centre, margin


PIPELINES = {
    "plain": Pipeline(),
    "robust": Pipeline(
        scales=(1.0, 1.5),
        exposure=True,
        exposure_band=1.3,
        largest=True,
        zoom=2.0,
        component="margin",
    ),
}


def name_of(name: str | None, cfg: dict) -> str:
    """The pipeline name ``name`` ("plain", "robust") stands for: for None/"auto" the one the
    checkpoint's config records under ``pipeline`` (plain when none); ValueError if unknown."""
    if name in (None, "auto"):
        name = cfg.get("pipeline", "plain")
    if name not in PIPELINES:
        raise ValueError(f"unknown pipeline {name!r}; choose from auto, {', '.join(PIPELINES)}")
    return name


def resolve(name: str | Pipeline | None, cfg: dict) -> Pipeline:
    """The :class:`Pipeline` itself, or the one :func:`name_of` names."""
    if isinstance(name, Pipeline):
        return name
    name = name_of(name, cfg)
    return PIPELINES[name]


def input_sides(train_size: int, p: Pipeline) -> list[int]:
    """The square input sides of ``p`` (one per scale) for a net trained at ``train_size``."""
    return [input_size(train_size, s) for s in p.scales]


def input_size(train_size: int, scale: float) -> int:
    """Square input side for ``scale`` times the training size: the training size itself at
    scale 1, else a multiple of 16 (the nets halve the resolution four times), at least 16."""
    if scale == 1.0:
        return train_size
    return max(16, int(round(train_size * scale / 16)) * 16)


def exposure_gain(
    image: np.ndarray,
    target: float,
    band: float = 1.0,
    lo: float = 0.5,
    hi: float = 2.0,
    black: float = 32.0,
) -> float:
    """Gain bringing the median luma (BT.601, 0-255) of ``image`` (H,W,3) into
    [target / band, target * band] (1 when it is inside; band 1: exactly to ``target``),
    clipped to [lo, hi]. The median is over the field of view: pixels of luma above ``black``
    (a black border outside a dermoscope's circular field is not under-exposure), or over all
    pixels when fewer than 1% are."""
    luma = image.reshape(-1, 3).astype(np.float32) @ LUMA
    lit = luma[luma > black]
    median = max(float(np.median(lit if lit.size >= 0.01 * luma.size else luma)), 1.0)
    goal = float(np.clip(median, target / band, target * band))
    return float(np.clip(goal / median, lo, hi))


def apply_gain(image: np.ndarray, gain: float) -> np.ndarray:
    """``image * gain`` rounded and clipped to uint8 (the input itself when gain is 1)."""
    if gain == 1.0:
        return image
    return np.clip(np.rint(image * np.float32(gain)), 0, 255).astype(np.uint8)


def label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """(labels, count) of the 8-connected regions of ``mask`` (``scipy.ndimage.label``)."""
    return ndimage.label(mask, structure=np.ones((3, 3), bool))


def largest_component(mask: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
    """``mask`` with only its largest 8-connected component (ties: the first in raster order):
    largest by pixel count, or by the sum of ``weight`` (same shape) over it when given."""
    labels, n = label(mask)
    if n <= 1:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel(), None if weight is None else weight.ravel())[1:]
    return labels == 1 + int(np.argmax(sizes))


def component_weight(logits: np.ndarray, rule: str) -> np.ndarray | None:
    """Per-pixel weight by which step 3 compares components: None for "area" (pixel count),
    the probability for "mass", the probability times a centre prior ``max(0, 1 - r^2)`` for
    "centre" (``r``: distance from the frame centre, 1 at the middle of each edge), since
    dermoscopy photos are framed on the lesion and stickers and dark corners sit at the edge;
    "margin": the centre prior times the confidence margin ``max(0, 2p - 1)``, so a flat
    region barely above probability 1/2 weighs almost nothing however large or central."""
    if rule == "area":
        return None
    prob = special.expit(logits)
    if rule == "mass":
        return prob
    if rule not in RULES:
        raise ValueError(f"unknown component rule {rule!r}; choose from {', '.join(RULES)}")
    h, w = logits.shape
    y = (np.arange(h) + 0.5) / h * 2 - 1
    x = (np.arange(w) + 0.5) / w * 2 - 1
    prior = np.clip(1 - y[:, None] ** 2 - x[None, :] ** 2, 0, None)
    return prior * (prob if rule == "centre" else np.clip(2 * prob - 1, 0, None))


def seed_region(logits: np.ndarray, mask: np.ndarray, prob: float) -> np.ndarray | None:
    """Where to zoom: ``mask`` if it has a pixel; else the 8-connected region of
    ``sigmoid(logits) > prob`` holding the maximum; None when no pixel exceeds ``prob``."""
    if mask.any():
        return mask
    level = float(special.logit(prob))
    if logits.max() <= level:
        return None
    labels, _ = label(logits > level)
    return labels == labels.flat[int(np.argmax(logits))]


def zoom_window(
    region: np.ndarray, zoom: float, zoom_max: float, zoom_min: float
) -> tuple[int, int, int, int] | None:
    """(top, left, height, width) of the window to predict again: the frame's aspect, its
    fraction of the frame ``z = zoom * max(box height / H, box width / W)`` (at least
    ``zoom_min``), centred on the region's bounding box and shifted into the frame; None when
    ``z >= zoom_max`` (the lesion is already large enough in the frame)."""
    h, w = region.shape
    rows, cols = np.nonzero(region)
    bh, bw = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    z = zoom * max(bh / h, bw / w)
    if z >= zoom_max:
        return None
    z = max(z, zoom_min)
    wh, ww = max(1, round(z * h)), max(1, round(z * w))
    cy, cx = (rows.min() + rows.max() + 1) / 2, (cols.min() + cols.max() + 1) / 2
    top = int(np.clip(round(cy - wh / 2), 0, h - wh))
    left = int(np.clip(round(cx - ww / 2), 0, w - ww))
    return top, left, wh, ww
