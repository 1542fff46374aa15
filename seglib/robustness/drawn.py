"""Things drawn over the skin at full resolution: calibration discs, ruler marks, ink lines, hair.

Each takes an (H,W,3) uint8 image, its (H,W) bool lesion mask and a ``numpy.random.Generator``
and returns the new ``(image, mask)``; none of them changes the mask (discs and ink are placed
off the lesion, and thin ruler marks or hair over a lesion leave it lesion). Lines and arcs are
drawn with ``PIL.ImageDraw``; the discs are numpy because their texture is per pixel.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

DISC_COLOURS = {
    "yellow": (245, 215, 40),
    "orange": (248, 140, 30),
    "red": (215, 45, 45),
    "green": (60, 165, 75),
    "blue": (50, 100, 215),
    "white": (242, 242, 236),
    "grey": (140, 140, 148),
}
INK_COLOURS = ((110, 50, 150), (40, 60, 160), (30, 30, 35), (20, 110, 60))


def paste_disc(
    image: np.ndarray, centre: tuple[float, float], radius: float, colour, rng
) -> tuple[np.ndarray, np.ndarray]:
    """One textured disc: the pixels whose centres lie within ``radius`` of ``centre`` (row,
    column; pixel (i, j) has its centre at (i, j)) take ``colour`` with concentric print rings,
    grain and a darker rim. Returns (new image, footprint bool (H,W))."""
    h, w = image.shape[:2]
    yy, xx = np.ogrid[:h, :w]
    d = np.hypot(yy - centre[0], xx - centre[1])
    foot = d <= radius
    rings = 0.5 + 0.5 * np.cos(d / radius * rng.uniform(6, 16) * np.pi)
    shade = 1 - 0.12 * rings - 0.25 * np.clip((d / radius - 0.85) / 0.15, 0, 1)
    grain = 1 + 0.05 * rng.standard_normal((h, w))
    disc = np.asarray(colour, np.float32) * (shade * grain)[..., None]
    out = image.copy()
    out[foot] = np.clip(disc[foot], 0, 255).astype(np.uint8)
    return out, foot


def calibration_discs(image, mask, rng, count: tuple[int, int] = (1, 3)):
    """1-3 coloured calibration discs or stickers of several colours (:data:`DISC_COLOURS`),
    radius 7-18% of the short side, each centred inside the frame near an edge so that part of
    it lies outside the field, and never touching the lesion (a disc that does not fit is made
    smaller or left out)."""
    h, w = image.shape[:2]
    short = min(h, w)
    clear = ndimage.distance_transform_edt(~mask) if mask.any() else np.full((h, w), 1e9)
    names = list(DISC_COLOURS)
    for _ in range(rng.integers(count[0], count[1] + 1)):
        radius = rng.uniform(0.07, 0.18) * short
        for _try in range(50):
            inset = rng.uniform(0.2, 0.8) * radius  # centre's distance from the edge
            along = rng.uniform(0, 1)
            side = rng.integers(4)
            cy = (inset, h - 1 - inset, along * (h - 1), along * (h - 1))[side]
            cx = (along * (w - 1), along * (w - 1), inset, w - 1 - inset)[side]
            room = clear[int(round(cy)), int(round(cx))] - 2
            if room >= 0.04 * short:
                colour = DISC_COLOURS[names[rng.integers(len(names))]]
                image, _ = paste_disc(image, (cy, cx), min(radius, room), colour, rng)
                break
    return image, mask


def draw_ruler(
    image: np.ndarray,
    row: int,
    start: int,
    length: int,
    spacing: int,
    colour=(20, 20, 20),
    width: int = 3,
) -> np.ndarray:
    """A horizontal ruler: a baseline at ``row`` from column ``start`` for ``length`` pixels and
    a 2 px wide tick below it every ``spacing`` pixels (from ``start``; columns x and x+1), every
    5th tick twice and every 10th three times as long (a millimetre scale)."""
    im = Image.fromarray(image)
    draw = ImageDraw.Draw(im)
    draw.line([(start, row), (start + length, row)], fill=tuple(colour), width=width)
    tick = max(3, spacing)
    for k, x in enumerate(range(start, start + length + 1, spacing)):
        long = 3 if k % 10 == 0 else 2 if k % 5 == 0 else 1
        draw.line([(x, row), (x, row + long * tick)], fill=tuple(colour), width=2)
    return np.asarray(im).copy()


def ruler_marks(image, mask, rng):
    """A printed ruler (baseline 3-6 px, millimetre ticks 0.8-1.4% of the long side apart, dark
    or white) along one edge of the frame, 3-8% in from it, over 40-90% of that edge."""
    k = int(rng.integers(4))
    rotated = np.rot90(image, k)  # draw along the top of a rotated copy, then rotate back
    h, w = rotated.shape[:2]
    spacing = max(3, int(round(rng.uniform(0.008, 0.014) * max(h, w))))
    length = int(rng.uniform(0.4, 0.9) * w)
    start = int(rng.integers(0, w - length + 1))
    row = int(rng.uniform(0.03, 0.08) * h)
    colour = (235, 235, 235) if rng.uniform() < 0.3 else (20, 20, 25)
    width = int(rng.integers(3, 7))
    drawn = draw_ruler(np.ascontiguousarray(rotated), row, start, length, spacing, colour, width)
    return np.ascontiguousarray(np.rot90(drawn, -k)), mask


def ink_marks(image, mask, rng):
    """Surgical-marker lines around the lesion: a dashed ellipse that encloses the lesion's
    bounding box with a margin of 2-8% of the short side (so the ink never touches the lesion),
    6-14 px wide, purple, blue, black or green."""
    h, w = image.shape[:2]
    if not mask.any():
        return image, mask
    rows, cols = np.nonzero(mask)
    cy, cx = (rows.min() + rows.max()) / 2, (cols.min() + cols.max()) / 2
    width = int(rng.integers(6, 15))
    margin = rng.uniform(0.02, 0.08) * min(h, w) + width
    ry = (rows.max() - rows.min() + 1) / 2 * np.sqrt(2) + margin  # the box's circumscribed
    rx = (cols.max() - cols.min() + 1) / 2 * np.sqrt(2) + margin  # ellipse, then the margin
    im = Image.fromarray(image)
    draw = ImageDraw.Draw(im)
    colour = INK_COLOURS[rng.integers(len(INK_COLOURS))]
    dash = rng.uniform(15, 40)
    first = angle = rng.uniform(0, 360)
    while angle < first + 360:
        end = min(angle + dash, first + 360)
        draw.arc([cx - rx, cy - ry, cx + rx, cy + ry], angle, end, colour, width)
        angle += dash + rng.uniform(5, 20)
    return np.asarray(im).copy(), mask


def dense_hair(image, mask, rng, count: tuple[int, int] = (40, 120)):
    """Dense dark hair: ``count`` quadratic Bezier strands, 1-4 px wide, dark brown to black,
    crossing the frame and the lesion (hair over a lesion stays lesion)."""
    h, w = image.shape[:2]
    im = Image.fromarray(image)
    draw = ImageDraw.Draw(im)
    t = np.linspace(0, 1, 60)[:, None]
    for _ in range(rng.integers(count[0], count[1] + 1)):
        p0, p2 = rng.uniform(-0.1, 1.1, (2, 2)) * (w, h)
        p1 = rng.uniform(0.1, 0.9, 2) * (w, h)
        pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
        tone = rng.uniform(15, 70)
        colour = tuple(int(tone * f) for f in (1.0, 0.8, 0.65))
        draw.line([tuple(p) for p in pts], fill=colour, width=int(rng.integers(1, 5)))
    return np.asarray(im).copy(), mask
