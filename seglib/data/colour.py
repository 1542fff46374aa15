"""Colour constancy of the net's input: the same correction in training, evaluation, prediction
and the exported ONNX graph (a checkpoint records which in its config's ``colour``).

Dermoscopes differ in their light and white balance; a correction that maps every image to a
grey-world-like illuminant removes part of that difference before the net sees the image
(Barata, Celebi & Marques, IEEE JBHI 2015, for dermoscopy; Ng et al. and Abhishek et al.,
CVPRW 2020, for segmentation across archives).

- ``none``: the image as it is.
- ``sog``: Shades of Gray (Finlayson & Trezzi, CIC 2004) with Minkowski norm ``p = 6``: the
  illuminant of channel c is ``e_c = mean(I_c ** p) ** (1/p)``; with ``e`` scaled to unit length,
  each channel is divided by ``sqrt(3) e_c`` (a grey illuminant changes nothing) and the result
  clipped to the image's range.
"""

from __future__ import annotations

import math

import torch

COLOURS = ("none", "sog")
"""The input corrections a run can train with (``RunConfig.colour``, ``--colour``)."""

SOG_POWER = 6


def shades_of_gray(x: torch.Tensor, p: int = SOG_POWER, peak: float = 255.0) -> torch.Tensor:
    """Shades of Gray correction of images ``x`` (..., 3, H, W) with values in ``[0, peak]``
    (uint8 or float); returns float32 in ``[0, peak]``, each image corrected by its own
    illuminant estimate (the module's formula)."""
    x = x.float()
    e = (x / peak).pow(p).mean(dim=(-2, -1), keepdim=True).pow(1.0 / p)  # (..., 3, 1, 1)
    unit = e / e.norm(dim=-3, keepdim=True).clamp_min(1e-12)
    gain = 1.0 / (unit * math.sqrt(3.0)).clamp_min(1e-6)
    return (x * gain).clamp(0.0, peak)


def check(colour: str) -> str:
    """``colour`` if it is one of :data:`COLOURS`, else ``ValueError`` naming them."""
    if colour not in COLOURS:
        raise ValueError(f"colour correction {colour!r} unknown; one of {', '.join(COLOURS)}")
    return colour


def correct(x: torch.Tensor, colour: str, peak: float = 1.0) -> torch.Tensor:
    """Float images ``x`` (B, 3, H, W) in ``[0, peak]`` with the correction ``colour``."""
    return shades_of_gray(x, peak=peak) if check(colour) == "sog" else x


def correct_uint8(images: torch.Tensor, colour: str) -> torch.Tensor:
    """uint8 images (N, 3, H, W) with the correction ``colour``, rounded back to uint8 (the
    training and evaluation data; ``none`` returns ``images`` itself). Corrected in chunks so
    that a few thousand images need no float copy of them all."""
    if check(colour) == "none":
        return images
    out = torch.empty_like(images)
    for i in range(0, len(images), 256):
        out[i : i + 256] = shades_of_gray(images[i : i + 256]).round_().to(torch.uint8)
    return out


def of(cfg: dict) -> str:
    """The correction a checkpoint's ``config`` trained with (``none`` before the option)."""
    return check(cfg.get("colour", "none"))
