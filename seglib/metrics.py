"""Per-image segmentation metrics: IoU, Dice and the course score.

Inputs are binary masks (B, 1, H, W): bool, or 0/1 (also 0/255) int or float, binarised with
``> 0.5``. Every metric returns a (B,) float32 tensor, one value per image; report the mean.
An empty prediction against an empty target counts as a perfect 1.0.
"""

from __future__ import annotations

import torch
from torch import Tensor

# ceil() tolerance of the course score: 20 * (IoU - 0.5) is computed in float64, where e.g.
# IoU = 0.55 gives 1.0000000000000009; without it that would step up to 0.2 instead of 0.1.
STEP_TOL = 1e-6


def from_logits(logits: Tensor) -> Tensor:
    """Binary prediction from logits: ``logits > 0`` (probability > 0.5), bool."""
    return logits > 0


def _binary(x: Tensor) -> Tensor:
    return x if x.dtype == torch.bool else x > 0.5


def _counts(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-image |P n T|, |P| and |T| as float64 (exact for any realistic image size)."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    if pred.dim() < 2:
        raise ValueError(f"expected a batch (B, 1, H, W), got {tuple(pred.shape)}")
    p, t = _binary(pred), _binary(target)
    dims = tuple(range(1, p.dim()))
    inter = (p & t).sum(dims, dtype=torch.float64)
    return inter, p.sum(dims, dtype=torch.float64), t.sum(dims, dtype=torch.float64)


def _iou64(pred: Tensor, target: Tensor) -> Tensor:
    inter, np_, nt = _counts(pred, target)
    union = np_ + nt - inter
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def iou(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image IoU ``|P n T| / |P u T|``; 1.0 where both masks are empty.

    Shape: pred, target (B, 1, H, W) -> (B,) float32.
    """
    return _iou64(pred, target).float()


def dice(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image Dice ``2 |P n T| / (|P| + |T|)``; 1.0 where both masks are empty.

    Shape: pred, target (B, 1, H, W) -> (B,) float32.
    """
    inter, np_, nt = _counts(pred, target)
    denom = np_ + nt
    return torch.where(denom > 0, 2 * inter / denom.clamp_min(1), torch.ones_like(denom)).float()


def score_from_iou(iou_values: Tensor) -> Tensor:
    """Course score step of IoU: ``ceil(clamp(20 * (IoU - 0.5) - STEP_TOL, 0, 10)) / 10``.

    IoU <= 0.5 -> 0.0, (0.5, 0.55] -> 0.1, ..., (0.95, 1.0] -> 1.0. The tiny tolerance
    ``STEP_TOL`` stops float rounding from pushing a value sitting exactly on a step edge
    (IoU = 0.55, 0.6, ...) into the next step.

    Shape: any -> same shape, float32.
    """
    x = 20 * (iou_values.double() - 0.5) - STEP_TOL
    return (torch.ceil(x.clamp(0, 10)) / 10).float()


def course_score(pred: Tensor, target: Tensor) -> Tensor:
    """The original report's ``iou_pytorch``: per-image IoU mapped by :func:`score_from_iou`.

    Shape: pred, target (B, 1, H, W) -> (B,) float32.
    """
    return score_from_iou(_iou64(pred, target))


def summarise(pred: Tensor, target: Tensor) -> dict[str, Tensor]:
    """``dict(iou=..., dice=..., score=...)`` of per-image (B,) float32 tensors."""
    iou64 = _iou64(pred, target)
    return {"iou": iou64.float(), "dice": dice(pred, target), "score": score_from_iou(iou64)}
