"""Batch augmentation on tensors, on whatever device the batch lives: the same random flips and
rot90 for image and mask, plus mild brightness/contrast jitter on the image only.

Random draws come from a CPU ``torch.Generator`` (so runs are reproducible and resumable on any
device) and are a few numbers per batch; the pixel work stays on the batch's device.
"""

from __future__ import annotations

import torch


def _where(flag: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(flag.view(-1, 1, 1, 1), a, b)


def augment(
    x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, jitter: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly flip/rotate each (image, mask) pair of a square batch and jitter image colours.

    Args:
        x: images (B,3,H,W) float, normalised. y: masks (B,1,H,W) float. H must equal W.
        gen: CPU generator for the random draws. jitter: max relative brightness/contrast change.
    Returns:
        the augmented (x, y), same shapes.
    """
    b = x.shape[0]
    r = torch.rand(b, 5, generator=gen).to(x.device, non_blocking=True)
    xy = torch.cat([x, y.to(x.dtype)], dim=1)
    xy = _where(r[:, 0] < 0.5, xy.flip(-1), xy)
    xy = _where(r[:, 1] < 0.5, xy.flip(-2), xy)
    xy = _where(r[:, 2] < 0.5, xy.transpose(-1, -2), xy)  # with the flips: all 8 rot90/flip maps
    x, y = xy[:, :3], xy[:, 3:]
    contrast = (1 + jitter * (2 * r[:, 3] - 1)).view(-1, 1, 1, 1)
    bright = (jitter * (2 * r[:, 4] - 1)).view(-1, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * contrast + mean + bright, y
