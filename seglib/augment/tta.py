"""Test-time augmentation: average a net's logits over the 8 flips/rotations of the square.

A dermoscopy lesion has no preferred orientation, and training already draws all 8 dihedral
maps (``augment``), so the mean prediction over them is a cheap ensemble (Moshkov et al. 2020,
"Test-time augmentation for deep learning-based cell segmentation", Sci. Rep. 10:5068).
"""

from __future__ import annotations

from torch import Tensor

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


def tta_logits(model, x: Tensor, maps: int = N_MAPS) -> Tensor:
    """Mean logits of ``model`` over the first ``maps`` dihedral maps of a square batch ``x``.

    Shape: (B, C, H, H) -> the model's output shape. ``maps=1`` is the plain prediction.
    """
    if not 1 <= maps <= N_MAPS:
        raise ValueError(f"maps={maps}: must be 1..{N_MAPS}")
    total = None
    for k in range(maps):
        y = undo_dihedral(model(dihedral(x, k)), k).float()
        total = y if total is None else total + y
    return total / maps
