"""Test-time augmentation: average a net's logits over the 8 flips/rotations of the square.

A dermoscopy lesion has no preferred orientation, and training already draws all 8 dihedral
maps (``augment``), so the mean prediction over them is a cheap ensemble (Moshkov et al. 2020,
"Test-time augmentation for deep learning-based cell segmentation", Sci. Rep. 10:5068).
"""

from __future__ import annotations

import torch
from torch import Tensor

from seglib.runtime import INFER_BATCH as BATCH

N_MAPS = 8


def dihedral(x: Tensor, k: int) -> Tensor:
    """Map ``k`` in 0..7 of the square's symmetry group on the last two dims:
    bit 4 transposes, then bit 1 flips columns, bit 2 flips rows (k = 0 is the identity)."""
    if k & 4:
        x = x.transpose(-1, -2)
    if k & 1:
        x = x.flip(-1)
    if k & 2:
        x = x.flip(-2)
    return x


def undo_dihedral(x: Tensor, k: int) -> Tensor:
    """Inverse of :func:`dihedral`: ``undo_dihedral(dihedral(x, k), k) == x``."""
    if k & 2:
        x = x.flip(-2)
    if k & 1:
        x = x.flip(-1)
    if k & 4:
        x = x.transpose(-1, -2)
    return x


def tta_logits(model, x: Tensor, maps: int = N_MAPS, batch: int = BATCH) -> Tensor:
    """Mean logits of ``model`` over the first ``maps`` dihedral maps of a square batch ``x``.

    Shape: (B, C, H, H) -> the model's output shape. ``maps=1`` is the plain prediction.
    The views go through the net ``max(1, batch // B)`` maps at a time, stacked into one batch
    in ``x``'s memory format (``batch=1``: one forward per map); the logits are summed in map
    order in float32 either way.
    """
    if not 1 <= maps <= N_MAPS:
        raise ValueError(f"maps={maps}: must be 1..{N_MAPS}")
    n = x.shape[0]
    per = max(1, batch // max(1, n))
    fmt = _memory_format(x)
    total = None
    for first in range(0, maps, per):
        ks = range(first, min(first + per, maps))
        views = torch.cat([dihedral(x, k) for k in ks]).contiguous(memory_format=fmt)
        for k, y in zip(ks, model(views).split(n), strict=True):
            y = undo_dihedral(y, k).float()
            total = y if total is None else total + y
    return total / maps


def _memory_format(x: Tensor) -> torch.memory_format:
    """channels_last for a 4-D batch stored so (a runtime's format), else contiguous."""
    if (
        x.dim() == 4
        and not x.is_contiguous()
        and x.is_contiguous(memory_format=torch.channels_last)
    ):
        return torch.channels_last
    return torch.contiguous_format
