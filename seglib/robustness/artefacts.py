"""Realistic artefacts of real-world dermoscopy images, applied at full resolution.

Every artefact is a function ``f(image, mask, rng) -> (image, mask)``: ``image`` (H,W,3) uint8,
``mask`` (H,W) bool (the lesion), ``rng`` a ``numpy.random.Generator`` that is the only source of
randomness, so the same generator state always gives the same result. Geometric artefacts (small
lesion, aspect crops, rotations) move the mask with the image; the others leave it unchanged.
:data:`KINDS` names them in table order; :data:`TRAINED_KINDS` are those that the strong
training augmentation (:mod:`seglib.augment.strong`) imitates; the rest are held out.
Drawn overlays (discs, ruler, ink, hair) live in :mod:`seglib.robustness.drawn`.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

from seglib.robustness.drawn import calibration_discs, dense_hair, ink_marks, ruler_marks

SKIN = (205, 160, 135)  # fallback skin colour when an image has no lesion-free pixels


# --- geometry --------------------------------------------------------------------------------


def skin_colour(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean colour (3,) of the lesion-free skin within 10% of the short side of the lesion
    (else of all lesion-free pixels, else :data:`SKIN`)."""
    free = ~mask
    if mask.any() and free.any():
        near = free & (ndimage.distance_transform_edt(free) <= 0.1 * min(mask.shape))
        if near.any():
            return image[near].mean(0)
    return image[free].mean(0) if free.any() else np.asarray(SKIN, np.float64)


def _smooth_field(rng, shape: tuple[int, int], cells: int = 4) -> np.ndarray:
    """Low-frequency noise (H,W) in about [-1,1]: a (cells+1)^2 random grid, bicubic upsampled."""
    grid = rng.uniform(-1, 1, (cells + 1, cells + 1)).astype(np.float32)
    return np.asarray(Image.fromarray(grid).resize(shape[::-1], Image.BICUBIC))


def feather(n: int, width: float) -> np.ndarray:
    """(n,) weights rising from 0 to 1 (smoothstep) over ``width * n`` pixels at both ends."""
    i = np.arange(n) + 0.5
    t = np.clip(np.minimum(i, n - i) / (width * n), 0, 1)
    return t * t * (3 - 2 * t)


def smooth_surround(image, mask, shape: tuple[int, int], scale: float, rng) -> np.ndarray:
    """(H,W,3) float skin of the lesion's surrounding colour with gentle low-frequency variation:
    the surround :func:`small_lesion` pastes the shrunken photo on (``scale`` unused)."""
    return skin_colour(image, mask).astype(np.float32) + 6 * _smooth_field(rng, shape)[..., None]


def small_lesion(
    image, mask, rng, fraction: tuple[float, float] = (0.008, 0.025), surround=smooth_surround
):
    """Zoom out: shrink the whole frame (image and mask alike, anti-aliased bilinear; the mask
    resized as float and thresholded at 0.5) so the lesion covers a uniform target fraction in
    ``fraction`` of the frame, and paste it at a random place on skin of the lesion's
    surrounding colour with gentle low-frequency variation; the pasted edge is feathered over
    10% of its side so no rectangle shows (a lesion cut by the frame loses the part faded below
    half: at most 19% of it, so the fraction stays above 0.5%). A lesion already at most
    ``fraction[1]`` is left as it is. ``surround(image, mask, shape, scale, rng)`` makes the
    skin around it (scale and place are drawn from ``rng`` before it is called)."""
    h, w = mask.shape
    f0 = mask.mean()
    if f0 <= fraction[1]:
        return image, mask
    s = np.sqrt(rng.uniform(*fraction) / f0)
    sw, sh = max(1, round(w * s)), max(1, round(h * s))
    small = np.asarray(Image.fromarray(image).resize((sw, sh), Image.BILINEAR), np.float32)
    m = Image.fromarray(mask.astype(np.float32)).resize((sw, sh), Image.BILINEAR)
    small_mask = np.asarray(m) > 0.5
    top, left = int(rng.integers(0, h - sh + 1)), int(rng.integers(0, w - sw + 1))
    canvas = np.array(surround(image, mask, (h, w), s, rng), np.float32)
    alpha = feather(sh, 0.1)[:, None] * feather(sw, 0.1)[None, :]
    window = (slice(top, top + sh), slice(left, left + sw))
    canvas[window] = small * alpha[..., None] + canvas[window] * (1 - alpha[..., None])
    out_mask = np.zeros_like(mask)
    out_mask[window] = small_mask & (alpha >= 0.5)  # lesion faded into the skin is not shown
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8), out_mask


def crop_window(shape: tuple[int, int], mask: np.ndarray, aspect: float, rng) -> tuple[int, ...]:
    """(top, left, height, width) of the largest window of width/height ``aspect`` inside the
    frame, placed at random among the positions that keep the lesion's bounding box whole, or
    centred on the box (clipped to the frame) where none does."""
    h, w = shape
    ch, cw = (h, round(h * aspect)) if w >= h * aspect else (round(w / aspect), w)
    ch, cw = min(ch, h), min(cw, w)
    if not mask.any():
        return (h - ch) // 2, (w - cw) // 2, ch, cw
    rows, cols = np.nonzero(mask)

    def place(lo, hi, size, full):  # start so that [lo, hi] lies in [start, start + size)
        a, b = max(0, hi - size + 1), min(lo, full - size)
        if a <= b:
            return int(rng.integers(a, b + 1))
        return int(np.clip(round((lo + hi + 1 - size) / 2), 0, full - size))

    return (
        place(rows.min(), rows.max(), ch, h),
        place(cols.min(), cols.max(), cw, w),
        ch,
        cw,
    )


def crop_aspect(image, mask, rng, aspect: float):
    """Crop to width/height ``aspect`` (the largest such window; see :func:`crop_window`)."""
    top, left, ch, cw = crop_window(mask.shape, mask, aspect, rng)
    win = (slice(top, top + ch), slice(left, left + cw))
    return image[win].copy(), mask[win].copy()


def crop_3_2(image, mask, rng):
    """A 3:2 crop of a landscape frame (2:3 of a portrait one), keeping the lesion."""
    h, w = mask.shape
    return crop_aspect(image, mask, rng, 1.5 if w >= h else 2 / 3)


def crop_1_1(image, mask, rng):
    """A square crop, keeping the lesion where it fits."""
    return crop_aspect(image, mask, rng, 1.0)


def rot90(image, mask, rng, k: int | None = None):
    """Rotate image and mask by ``k`` quarter turns counter-clockwise (``np.rot90``); ``k``
    drawn from 1, 2, 3 when not given."""
    k = int(rng.integers(1, 4)) if k is None else k
    return np.ascontiguousarray(np.rot90(image, k)), np.ascontiguousarray(np.rot90(mask, k))


# --- light and optics ------------------------------------------------------------------------


def _radius(shape: tuple[int, int], centre=None) -> np.ndarray:
    """Distance of each pixel from ``centre`` (default: the frame centre) in half-diagonals
    between corner pixel centres (so 1 at the corner pixels of a centred frame)."""
    h, w = shape
    cy, cx = ((h - 1) / 2, (w - 1) / 2) if centre is None else centre
    yy, xx = np.ogrid[:h, :w]
    return np.hypot(yy - cy, xx - cx) / max(np.hypot(h - 1, w - 1) / 2, 1e-9)


def fov_border(image, mask, rng):
    """Dark circular field of view: outside a circle (radius 0.5-0.9 half-diagonals, centre
    moved by up to 5% of the frame, always enclosing the lesion with a margin) the image turns
    almost black, with a soft edge of 1% of the diagonal. The mask is unchanged."""
    h, w = mask.shape
    centre = (
        (h - 1) / 2 + rng.uniform(-0.05, 0.05) * h,
        (w - 1) / 2 + rng.uniform(-0.05, 0.05) * w,
    )
    r = _radius((h, w), centre)
    radius = rng.uniform(0.5, 0.9)
    if mask.any():
        radius = max(radius, r[mask].max() + 0.03)
    dark = np.clip((r - radius) / 0.01, 0, 1)[..., None]
    black = rng.uniform(3, 20) + 3 * rng.standard_normal((h, w, 1))
    out = image * (1 - dark) + black * dark
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), mask


def vignetting(image, mask, rng, strength: float | None = None, power: float | None = None):
    """Lens vignetting: brightness times ``1 - strength * r**power`` (r in half-diagonals from
    the centre: 1 in the corners); strength 0.4-0.7 and power 2-3 when not given."""
    strength = rng.uniform(0.4, 0.7) if strength is None else strength
    power = rng.uniform(2, 3) if power is None else power
    gain = 1 - strength * _radius(mask.shape) ** power
    return np.clip(np.rint(image * gain[..., None]), 0, 255).astype(np.uint8), mask


def colour_cast(image, mask, rng, gains=None):
    """White-balance shift: each channel times its gain (drawn in 0.75-1.25, at least one at
    least 10% from 1), rounded and clipped to uint8."""
    if gains is None:
        gains = rng.uniform(0.75, 1.25, 3)
        i = rng.integers(3)
        d = gains[i] - 1
        gains[i] = 1 + (1 if d >= 0 else -1) * max(abs(d), 0.1)
    out = image * np.asarray(gains, np.float64)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), mask


def exposure(image, mask, rng, gain: float | None = None):
    """Under- or over-exposure: intensities times ``gain`` (0.5-0.75 or 1.3-1.6 when not
    given), rounded and clipped to uint8 (over-exposure saturates as a camera does)."""
    if gain is None:
        gain = rng.uniform(0.5, 0.75) if rng.uniform() < 0.5 else rng.uniform(1.3, 1.6)
    return np.clip(np.rint(image * float(gain)), 0, 255).astype(np.uint8), mask


def blur(image, mask, rng, radius: float | None = None):
    """Defocus: Pillow's Gaussian blur with ``radius`` (its sigma; 2-6 px when not given)."""
    radius = rng.uniform(2, 6) if radius is None else radius
    out = Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius))
    return np.asarray(out).copy(), mask


def jpeg(image, mask, rng, quality: int | None = None):
    """JPEG compression: encode and decode with Pillow at ``quality`` (10-35 when not given)."""
    quality = int(rng.integers(10, 36)) if quality is None else quality
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB")).copy(), mask


# --- registry --------------------------------------------------------------------------------

KINDS = {
    "small_lesion": small_lesion,
    "disc": calibration_discs,
    "ruler": ruler_marks,
    "ink": ink_marks,
    "hair": dense_hair,
    "fov_border": fov_border,
    "vignette": vignetting,
    "colour_cast": colour_cast,
    "exposure": exposure,
    "blur": blur,
    "jpeg": jpeg,
    "crop_3_2": crop_3_2,
    "crop_1_1": crop_1_1,
    "rot90": rot90,
}
"""Every scored artefact kind, in table order."""

TRAINED_KINDS = (
    "small_lesion",  # random_geometry's small-lesion zoom
    "disc",  # paste_discs
    "hair",  # draw_hair
    "fov_border",  # fov_border
    "colour_cast",  # colour_jitter's per-channel gains
    "exposure",  # colour_jitter's exposure and gamma
    "crop_3_2",  # random_geometry's aspect change and crops
    "crop_1_1",
    "rot90",  # the basic flips/rotations and the aspect change
)
"""Kinds that the strong training augmentation imitates; the others are never seen in training."""

HELD_OUT_KINDS = tuple(k for k in KINDS if k not in TRAINED_KINDS)


def apply(kind: str, image: np.ndarray, mask: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """Apply the artefact ``kind`` (a key of :data:`KINDS`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown artefact {kind!r}; choose from {', '.join(KINDS)}")
    return KINDS[kind](image, mask.astype(bool), rng)
