"""The ISIC challenge's segmentation metrics, as its official scorer computes them (numpy).

The metric set is that of the ISIC 2018 challenge, task 1 (lesion boundary segmentation),
Codella et al. 2019, "Skin Lesion Analysis Toward Melanoma Detection 2018: A Challenge Hosted
by the International Skin Imaging Collaboration (ISIC)", arXiv:1902.03368. Every definition,
including the degenerate (empty-mask) cases, follows the official scorer
``isic-challenge-scoring`` (``isic_challenge_scoring.segmentation.SegmentationScore``,
checked against version 5.6.0): masks are binarised at ``> 128``, each image gets a binary
confusion matrix, and the per-image metrics are macro-averaged.

Degenerate cases (the official scorer never returns NaN for a non-empty image):

* sensitivity = 1.0 when the truth has no foreground (TP + FN == 0),
* specificity = 1.0 when the truth has no background (TN + FP == 0),
* jaccard = dice = threshold_jaccard = 1.0 when both masks are empty (TP + FP + FN == 0);
  an empty truth with a non-empty prediction (or the reverse) scores 0.0 on all three.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

#: Metric names, in the official scorer's column order.
METRIC_NAMES = (
    "accuracy",
    "sensitivity",
    "specificity",
    "jaccard",
    "threshold_jaccard",
    "dice",
)

#: ISIC 2018 ranking metric: per-image Jaccard, set to 0 below this value (kept if >=).
JACCARD_THRESHOLD = 0.65

#: Grey-level threshold of the official scorer: foreground is ``value > 128``.
BINARISE_THRESHOLD = 128


def binarise(mask: np.ndarray) -> np.ndarray:
    """Return a boolean foreground mask, as the official ISIC scorer does.

    Boolean masks are returned as a copy; integer masks (8-bit greyscale images, 0/255) are
    foreground where ``mask > 128`` (strictly greater: 128 itself is background). Float masks
    are rejected, since probabilities in [0, 1] would silently all become background;
    threshold them yourself first.
    """
    mask = np.asarray(mask)
    if mask.dtype == np.bool_:
        return mask.copy()
    if np.issubdtype(mask.dtype, np.integer):
        return mask > BINARISE_THRESHOLD
    raise TypeError(f"binarise expects a bool or integer mask, got dtype {mask.dtype}")


def image_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Per-image ISIC 2018 segmentation metrics for boolean ``pred`` and ``truth`` masks.

    Follows ``isic_challenge_scoring`` (Codella et al. 2019, arXiv:1902.03368), with
    TP/TN/FP/FN pixel counts:

    * accuracy = (TP + TN) / (TP + TN + FP + FN)
    * sensitivity = TP / (TP + FN), or 1.0 if TP + FN == 0 (empty truth)
    * specificity = TN / (TN + FP), or 1.0 if TN + FP == 0 (all-foreground truth)
    * jaccard = TP / (TP + FP + FN), or 1.0 if TP + FP + FN == 0 (both empty)
    * dice = 2 TP / (2 TP + FP + FN), or 1.0 if TP + FP + FN == 0 (both empty)
    * threshold_jaccard = jaccard if jaccard >= 0.65 else 0.0

    Only a zero-pixel image yields NaN (accuracy), as in the official scorer.
    """
    pred = np.asarray(pred)
    truth = np.asarray(truth)
    if pred.dtype != np.bool_ or truth.dtype != np.bool_:
        raise TypeError("image_metrics expects boolean masks; use binarise() first")
    if pred.shape != truth.shape:
        raise ValueError(f"shape mismatch: pred {pred.shape} vs truth {truth.shape}")

    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred & ~truth))
    fn = int(np.count_nonzero(~pred & truth))
    tn = pred.size - tp - fp - fn

    union = tp + fp + fn
    jaccard = tp / union if union else 1.0
    return {
        "accuracy": (tp + tn) / pred.size if pred.size else math.nan,
        "sensitivity": tp / (tp + fn) if tp + fn else 1.0,
        "specificity": tn / (tn + fp) if tn + fp else 1.0,
        "jaccard": jaccard,
        "threshold_jaccard": jaccard if jaccard >= JACCARD_THRESHOLD else 0.0,
        "dice": 2 * tp / (2 * tp + fp + fn) if union else 1.0,
    }


def macro_average(per_image: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Unweighted mean of per-image metrics over images, as the official scorer reports.

    Mirrors ``pandas.DataFrame.mean()`` used by ``SegmentationScore``: NaN values are
    skipped (NaN only if every image is NaN). The ISIC 2018 ranking score is
    ``macro_average(...)["threshold_jaccard"]``.
    """
    rows = list(per_image)
    if not rows:
        raise ValueError("macro_average needs at least one image")
    out = {}
    for name in METRIC_NAMES:
        values = np.array([row[name] for row in rows], dtype=np.float64)
        values = values[~np.isnan(values)]
        out[name] = float(values.mean()) if values.size else math.nan
    return out
