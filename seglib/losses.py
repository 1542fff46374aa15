"""Binary segmentation losses: BCE, Dice, Focal, Correlation (CMSS), Tversky, Lovasz hinge.

Every loss takes raw ``logits`` and a float 0/1 ``target`` of the same shape (B, 1, H, W) and
returns a scalar: a pure function (``dice_loss(logits, target, smooth=1.0)``) plus a thin
``nn.Module`` wrapper; ``build(name, **kw)`` makes the module by name.

All losses compute in float32 with autocast switched off for their own ops, so they are safe
under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (and CUDA fp16/bf16), and they reduce with
``sum(dim=...)`` rather than ``view``, so channels_last inputs work as they are.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import sigmoid_focal_loss

NAMES = ("bce", "dice", "focal", "correlation", "tversky", "lovasz")

_DIMS = (1, 2, 3)  # per-image reduction over (C, H, W)


def _float32(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Check shapes, cast logits and target to float32 and run ``fn`` with autocast off."""

    @functools.wraps(fn)
    def wrapper(logits: Tensor, target: Tensor, *args, **kwargs) -> Tensor:
        if logits.shape != target.shape:
            raise ValueError(
                f"logits {tuple(logits.shape)} and target {tuple(target.shape)} differ"
            )
        if logits.dim() != 4:
            raise ValueError(f"expected (B, 1, H, W) tensors, got {tuple(logits.shape)}")
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return fn(logits.float(), target.float(), *args, **kwargs)

    return wrapper


@_float32
def bce_loss(logits: Tensor, target: Tensor, pos_weight: float | None = None) -> Tensor:
    """Binary cross entropy from logits, mean over all pixels.

    Uses the log-sum-exp form of ``F.binary_cross_entropy_with_logits``: finite value and
    gradient for any finite logit (e.g. +-1e4).

    Args:
        pos_weight: weight of the positive (lesion) term; ``None`` means 1.
    Shape: logits, target (B, 1, H, W) -> scalar.
    Reference: pixel-wise cross entropy as in Long et al. 2015, "Fully Convolutional Networks".
    """
    pw = None if pos_weight is None else torch.tensor(pos_weight, device=logits.device)
    return F.binary_cross_entropy_with_logits(logits, target, pos_weight=pw)


@_float32
def dice_loss(logits: Tensor, target: Tensor, smooth: float = 1.0) -> Tensor:
    """Soft Dice loss on sigmoid probabilities, computed PER IMAGE then averaged over the batch.

    ``1 - (2 * sum(p * t) + smooth) / (sum(p) + sum(t) + smooth)`` with ``p = sigmoid(logits)``,
    sums over one image's pixels. Per-image averaging keeps small lesions from being swamped by
    large ones in the same batch; the probabilities are never thresholded, so the loss is smooth.

    Args:
        smooth: additive smoothing in numerator and denominator (an empty target and an empty
            prediction give loss 0).
    Shape: logits, target (B, 1, H, W) -> scalar.
    Reference: Milletari et al. 2016, "V-Net" (soft Dice).
    """
    p = torch.sigmoid(logits)
    inter = (p * target).sum(_DIMS)
    card = p.sum(_DIMS) + target.sum(_DIMS)
    return (1 - (2 * inter + smooth) / (card + smooth)).mean()


@_float32
def tversky_loss(
    logits: Tensor, target: Tensor, alpha: float = 0.3, beta: float = 0.7, smooth: float = 1.0
) -> Tensor:
    """Tversky loss, per image then mean: ``1 - (TP + s) / (TP + alpha*FP + beta*FN + s)``.

    TP, FP, FN are soft counts from sigmoid probabilities. ``alpha`` weighs false positives,
    ``beta`` false negatives; beta > alpha favours recall. With ``alpha = beta = 0.5`` it equals
    :func:`dice_loss` with twice the smoothing (identical when ``smooth = 0``).

    Args:
        alpha, beta: weights of FP and FN. smooth: additive smoothing.
    Shape: logits, target (B, 1, H, W) -> scalar.
    Reference: Salehi et al. 2017, "Tversky loss function for image segmentation using 3D fully
        convolutional deep networks".
    """
    p = torch.sigmoid(logits)
    tp = (p * target).sum(_DIMS)
    fp = (p * (1 - target)).sum(_DIMS)
    fn = ((1 - p) * target).sum(_DIMS)
    denom = (tp + alpha * fp + beta * fn + smooth).clamp_min(1e-12)
    return (1 - (tp + smooth) / denom).mean()


@_float32
def focal_loss(logits: Tensor, target: Tensor, alpha: float = -1.0, gamma: float = 2.0) -> Tensor:
    """Sigmoid focal loss ``-alpha_t (1 - p_t)^gamma log(p_t)``, mean over all pixels.

    Computed by ``torchvision.ops.sigmoid_focal_loss``. Default ``alpha = -1``: no class
    weighting. RetinaNet's 0.25 down-weights positives by 3x, which suits 1:1000 anchor
    imbalance but not PH2, where lesions cover 3-98% of the image (often most of it), so it
    would bias masks towards background; ``alpha = -1`` also keeps the loss on the BCE scale
    (gamma = 0 gives exactly BCE) and matches the course's alpha-free focal loss.

    Args:
        alpha: weight of positives in [0, 1] (negatives get 1 - alpha), or -1 for none.
        gamma: focusing exponent.
    Shape: logits, target (B, 1, H, W) -> scalar.
    Reference: Lin et al. 2017, "Focal Loss for Dense Object Detection".
    """
    return sigmoid_focal_loss(logits, target, alpha=alpha, gamma=gamma, reduction="mean")


def _gaussian_window(window: int, sigma: float, channels: int, like: Tensor) -> Tensor:
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd size, got {window}")
    x = torch.arange(window, dtype=torch.float32, device=like.device) - window // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g).expand(channels, 1, window, window)


def _local_normalise(x: Tensor, kernel: Tensor, c: float) -> Tensor:
    """``(x - mu) / (sigma + c)`` with Gaussian-window local mean and std (replicate padding)."""
    r = kernel.shape[-1] // 2
    xp = F.pad(x, (r, r, r, r), mode="replicate")
    mu = F.conv2d(xp, kernel, groups=x.shape[1])
    var = (F.conv2d(xp * xp, kernel, groups=x.shape[1]) - mu * mu).clamp_min(0)
    return (x - mu) / (var.sqrt() + c)


@dataclass(frozen=True)
class CorrelationParams:
    """The hyperparameters of :func:`correlation_loss`, the paper's defaults.

    window: odd Gaussian window size. sigma: its std. beta: hard-pixel threshold as a fraction
    of the per-image max error. c: stabilising constant of the normalisation. bce_weight: weight
    of the plain BCE term. weight: weight of the structural term. eps: guards ``sum(f) = 0`` (a
    perfect prediction, e = 0 everywhere).
    """

    window: int = 3
    sigma: float = 1.5
    beta: float = 0.1
    c: float = 0.01
    bce_weight: float = 1.0
    weight: float = 1.0
    eps: float = 1e-6


@_float32
def correlation_loss(
    logits: Tensor, target: Tensor, params: CorrelationParams = CorrelationParams()
) -> Tensor:
    """Correlation maximised structural similarity loss (CMSS / SSL), combined with BCE.

    Our reading of the paper: the label map y and the probability map p = sigmoid(logits) are
    each locally normalised, ``y' = (y - mu_y) / (sigma_y + c)``, ``p' = (p - mu_p) /
    (sigma_p + c)``, with mean and std over a small Gaussian window; ``e = |y' - p'|`` is the
    per-pixel structural error (low local linear correlation between y and p -> large e).
    Hard pixels are ``f = 1[e > beta * max(e)]`` (max per image). The structural term is the
    pixel cross entropy re-weighted by e on the hard pixels,
    ``loss_s = sum(e * f * BCE) / (sum(f) + eps)`` per image, then batch mean, and the total is
    ``bce_weight * mean(BCE) + weight * loss_s``.

    ``e`` and ``f`` carry no gradient: e is a weight that says where to look, as in the paper's
    hard-example view; back-propagating through ``1 / (sigma_p + c)`` would amplify noise in
    flat regions by up to ``1 / c`` and push the net to change its local contrast rather than
    its class. Where a map is flat (all-0 or all-1 masks) sigma = 0, and ``c`` keeps y', p'
    finite; the variance is clamped at 0 before the square root and computed without autocast.
    Replicate padding avoids false structure at the image border.

    Args:
        params: window, sigma, beta, c, the two weights and eps (:class:`CorrelationParams`).
    Shape: logits, target (B, C, H, W) -> scalar (C = 1 here).
    Reference: Zhao et al. 2019, "Correlation Maximized Structural Similarity Loss for Semantic
        Segmentation", arXiv:1910.08711.
    """
    q = params
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    with torch.no_grad():
        kernel = _gaussian_window(q.window, q.sigma, logits.shape[1], logits)
        p = torch.sigmoid(logits)
        e = (_local_normalise(target, kernel, q.c) - _local_normalise(p, kernel, q.c)).abs()
        f = (e > q.beta * e.amax(dim=_DIMS, keepdim=True)).float()
    loss_s = (e * f * bce).sum(_DIMS) / (f.sum(_DIMS) + q.eps)
    return q.bce_weight * bce.mean() + q.weight * loss_s.mean()


@_float32
def lovasz_hinge_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Binary Lovasz hinge loss, per image then mean.

    Hinge errors ``1 - logit * sign`` (sign = +-1 for target 1/0) are sorted in decreasing
    order and dotted (after ReLU) with the gradient of the Lovasz extension of the Jaccard
    loss at the sorted ground truth: a convex surrogate that optimises IoU directly.

    Shape: logits, target (B, 1, H, W) -> scalar.
    Reference: Berman et al. 2018, "The Lovasz-Softmax loss: A tractable surrogate for the
        optimization of the intersection-over-union measure in neural networks".
    """
    b = logits.shape[0]
    x, t = logits.reshape(b, -1), target.reshape(b, -1)
    errors = 1 - x * (2 * t - 1)
    errors, order = errors.sort(dim=1, descending=True)
    gt = t.gather(1, order)
    gts = gt.sum(1, keepdim=True)
    inter = gts - gt.cumsum(1)
    union = gts + (1 - gt).cumsum(1)
    jaccard = 1 - inter / union  # union >= 1 from the first pixel on
    grad = torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], dim=1)
    return (F.relu(errors) * grad).sum(1).mean()


class BCELoss(nn.Module):
    """Module form of :func:`bce_loss`."""

    def __init__(self, pos_weight: float | None = None):
        super().__init__()
        self.pos_weight = pos_weight

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return bce_loss(logits, target, pos_weight=self.pos_weight)


class DiceLoss(nn.Module):
    """Module form of :func:`dice_loss` (per-image soft Dice)."""

    def __init__(self, smooth: float = 1.0):
        super().__init__()
        self.smooth = smooth

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return dice_loss(logits, target, smooth=self.smooth)


class FocalLoss(nn.Module):
    """Module form of :func:`focal_loss`."""

    def __init__(self, alpha: float = -1.0, gamma: float = 2.0):
        super().__init__()
        self.alpha, self.gamma = alpha, gamma

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return focal_loss(logits, target, alpha=self.alpha, gamma=self.gamma)


class CorrelationLoss(nn.Module):
    """Module form of :func:`correlation_loss` (CMSS + BCE)."""

    def __init__(
        self,
        window: int = 3,
        sigma: float = 1.5,
        beta: float = 0.1,
        c: float = 0.01,
        bce_weight: float = 1.0,
        weight: float = 1.0,
    ):
        super().__init__()
        self.params = CorrelationParams(
            window=window, sigma=sigma, beta=beta, c=c, bce_weight=bce_weight, weight=weight
        )

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return correlation_loss(logits, target, self.params)


class TverskyLoss(nn.Module):
    """Module form of :func:`tversky_loss`."""

    def __init__(self, alpha: float = 0.3, beta: float = 0.7, smooth: float = 1.0):
        super().__init__()
        self.alpha, self.beta, self.smooth = alpha, beta, smooth

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return tversky_loss(logits, target, alpha=self.alpha, beta=self.beta, smooth=self.smooth)


class LovaszHingeLoss(nn.Module):
    """Module form of :func:`lovasz_hinge_loss`."""

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return lovasz_hinge_loss(logits, target)


_REGISTRY = {
    "bce": BCELoss,
    "dice": DiceLoss,
    "focal": FocalLoss,
    "correlation": CorrelationLoss,
    "tversky": TverskyLoss,
    "lovasz": LovaszHingeLoss,
}


def build(name: str, **kw) -> nn.Module:
    """Loss module by name (one of :data:`NAMES`); keyword arguments go to its constructor."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown loss {name!r}; valid names: {', '.join(NAMES)}")
    return _REGISTRY[name](**kw)
