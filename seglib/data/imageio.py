"""Image files in and out: the one place that opens images, binarises masks and draws outlines.

Every reader goes through :func:`open_image` (fully decoded, a PH2Error naming the file when it
is empty, truncated or unreadable). Masks of any mode (1-bit, L, RGB 0/255; L with 0/1 values
too) become grey levels in [0, 1] (:func:`mask_levels`) and are binarised at 0.5, after resizing
when a square is wanted (:func:`square_mask`), at full resolution when scoring
(:func:`read_truth`).

Prediction reads real-world files:

Camera and archive images differ from PH2's BMPs: JPEGs rotated by an EXIF tag, grayscale,
16-bit, palette or RGBA files, photos of tens of megapixels, any aspect ratio. :func:`read_image`
turns each into an upright 8-bit RGB array, reduced on load (JPEG DCT scaling with
``Image.draft``, then ``Image.thumbnail``) to at most :data:`MAX_SIDE` pixels a side: the model sees
``size`` x ``size`` pixels anyway, and a 50-megapixel photo then never needs a full-size float
copy. The mask is written at the upright full resolution (:func:`upsample_mask`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image

from seglib import store
from seglib.errors import FolderError, PH2Error

REDUCING_GAP = 3.0
"""Fast square reads first box-reduce by an integer factor (``Image.resize(reducing_gap=3)``;
Pillow documents the result as indistinguishable from a plain resize in most cases)."""
MASK_LEVEL = 0.5
"""A pixel is lesion where its grey level in [0, 1] (after any resizing) is above this."""

BAD_FILE_HINT = "re-download or re-export it, or remove it"
"""What to do about a file that cannot be decoded (every such error message ends with it)."""

MASK_SIZE_HINT = "use the mask made for this image, or remove the pair"
"""What to do about a mask whose size is not its image's."""

MAX_SIDE = 2048
"""Images larger than this (either side) are reduced to it on load, keeping the aspect ratio."""

_ORIENTATION = 0x0112  # EXIF tag
T = Image.Transpose
# EXIF orientation -> the transpose that makes the image upright (as ImageOps.exif_transpose;
# applied here by hand because 16-bit images are converted, and lose their EXIF, first).
_TRANSPOSE = {2: T.FLIP_LEFT_RIGHT, 3: T.ROTATE_180, 4: T.FLIP_TOP_BOTTOM, 5: T.TRANSPOSE,
              6: T.ROTATE_270, 7: T.TRANSVERSE, 8: T.ROTATE_90}  # fmt: skip
_WIDE_GRAY = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def _gray8(im: Image.Image) -> Image.Image:
    """16-bit, 32-bit integer or float grayscale -> 8-bit "L", scaled (``convert("L")`` would
    clip every value above 255 to white)."""
    a = np.asarray(im).astype(np.float64)
    if im.mode == "F":
        top = 1.0 if a.size and a.max() <= 1.0 else 255.0
    else:  # 16-bit data; 32-bit "I" holding 8-bit values stays as is
        top = 65535.0 if im.mode.startswith("I;16") or (a.size and a.max() > 255) else 255.0
    return Image.fromarray(np.clip(np.rint(a * (255.0 / top)), 0, 255).astype(np.uint8), "L")


def _rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode -> "RGB"; transparent pixels composited over white."""
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    return im if im.mode == "RGB" else im.convert("RGB")


def open_image(path: Path, draft: int | None = None, error: type = PH2Error):
    """``(decoded image, its full (width, height))``; a JPEG is decoded at a reduced scale still
    at least ``draft`` px a side when ``draft`` is given. ``error`` (PH2Error or FolderError)
    names the file when it is empty, truncated or unreadable."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise error(f"{path}: empty file (0 bytes); {BAD_FILE_HINT}")
    try:
        im = Image.open(path)
        full = im.size
        if draft:
            im.draft("RGB", (draft, draft))  # no-op for non-JPEG files
        im.load()
    except Exception as e:  # PIL raises many types for bad files
        raise error(
            f"{path}: unreadable or truncated image ({type(e).__name__}: {e}); {BAD_FILE_HINT}"
        ) from e
    return im, full


def read_square(path: Path, size: int, fast: bool = False, error: type = PH2Error):
    """``(RGB uint8 (size, size, 3), full (width, height))``: the image resized to a square with
    Pillow's anti-aliased bilinear filter; ``fast`` adds JPEG DCT scaling and
    :data:`REDUCING_GAP`."""
    im, full = open_image(path, draft=size if fast else None, error=error)
    with im:
        gap = REDUCING_GAP if fast else None
        rgb = im.convert("RGB").resize((size, size), Image.BILINEAR, reducing_gap=gap)
    return np.asarray(rgb), full


def mask_levels(gray: np.ndarray) -> np.ndarray:
    """An 8-bit grey mask (PIL's "L" of any mode) as float32 levels in [0, 1] (0/1 or 0/255)."""
    levels = gray.astype(np.float32)
    levels /= 1.0 if levels.max(initial=0) <= 1 else 255.0
    return levels


def read_levels(path: Path, error: type = PH2Error) -> tuple[np.ndarray, tuple[int, int]]:
    """``(grey levels in [0, 1] (H, W), full (width, height))`` of a mask file."""
    im, full = open_image(path, error=error)
    with im:
        return mask_levels(np.asarray(im.convert("L"))), full


def square_mask(levels: np.ndarray, size: int, fast: bool = False) -> np.ndarray:
    """Grey levels resized to ``size`` x ``size`` as floats (anti-aliased bilinear), then
    binarised at :data:`MASK_LEVEL`: uint8 0/1 (size, size)."""
    gap = REDUCING_GAP if fast else None
    small = Image.fromarray(levels).resize((size, size), Image.BILINEAR, reducing_gap=gap)
    return (np.asarray(small) > MASK_LEVEL).astype(np.uint8)


def read_gray(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """An expert mask file as 8-bit grey (H, W) uint8 (PIL's "L" conversion of any mode);
    FolderError if its size is not ``shape`` (its image's (H, W))."""
    im, (w, h) = open_image(path, error=FolderError)
    if (h, w) != tuple(shape):
        raise FolderError(
            f"{path}: mask is {w}x{h} but its image is {shape[1]}x{shape[0]}; " + MASK_SIZE_HINT
        )
    with im:
        return np.asarray(im.convert("L"))


def truth_of(gray: np.ndarray) -> np.ndarray:
    """An 8-bit grey expert mask as bool: grey levels in [0, 1] (0/1 or 0/255 input) above
    :data:`MASK_LEVEL`, as every loader binarises masks."""
    return mask_levels(gray) > MASK_LEVEL


def read_truth(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """An expert mask at full resolution as bool (H, W); FolderError if its size is not
    ``shape`` (its image's (H, W))."""
    return truth_of(read_gray(path, shape))


def read_image(path: Path, max_side: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """An image file as (upright (h, w, 3) uint8 array, reduced so both sides are at most
    ``max_side`` (default :data:`MAX_SIDE`); the upright full size (H, W) its mask should have).

    Raises PH2Error naming the file when it is missing, unreadable or too large for PIL's
    decompression-bomb guard."""
    path, max_side = Path(path), max_side or MAX_SIDE
    try:
        with Image.open(path) as im:
            w, h = im.size
            turn = _TRANSPOSE.get(im.getexif().get(_ORIENTATION, 1))
            scale = max(w, h) / max_side
            if im.format == "JPEG" and scale > 1:  # decode at 1/2, 1/4 or 1/8 (DCT scaling)
                im.draft(im.mode, (math.ceil(w / scale), math.ceil(h / scale)))
            im = _rgb(_gray8(im) if im.mode in _WIDE_GRAY else im)
            im.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
            im = im if turn is None else im.transpose(turn)
            if turn in (T.TRANSPOSE, T.ROTATE_270, T.TRANSVERSE, T.ROTATE_90):
                w, h = h, w
            return np.asarray(im, dtype=np.uint8).copy(), (h, w)
    except FileNotFoundError:
        raise PH2Error(f"{path}: no such image file; check the path") from None
    except Image.DecompressionBombError as e:
        raise PH2Error(
            f"{path}: image too large to open safely ({e}); reduce it, or remove it"
        ) from None
    except (OSError, ValueError, SyntaxError) as e:  # PIL: OSError mostly, some codecs others
        raise PH2Error(f"{path}: cannot read image ({e}); {BAD_FILE_HINT}") from None


def read_rgb(path: Path) -> np.ndarray:
    """An image file as an upright (H, W, 3) uint8 array at full resolution (PH2Error naming the
    file when unreadable); :func:`read_image` reduces huge photos on load instead."""
    return read_image(path, max_side=1 << 30)[0]


def upsample_mask(logits: np.ndarray, size: tuple[int, int], rows: int = 512) -> np.ndarray:
    """``logits > 0`` after bilinear resizing of a (h, w) logit map to ``size`` (H, W), as
    ``F.interpolate(mode="bilinear", align_corners=False)`` does it, computed ``rows`` output
    rows at a time so a huge output needs only its bool mask in memory (bilinear resizing is
    separable: first along x, then along y)."""

    def taps(n_in: int, n_out: int):
        src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
        i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        t = (src - i0).astype(np.float32)
        return i0, i1, t

    H, W = size
    logits = np.asarray(logits, dtype=np.float32)
    x0, x1, tx = taps(logits.shape[1], W)
    cols = logits[:, x0] * (1 - tx) + logits[:, x1] * tx  # (h, W)
    y0, y1, ty = taps(logits.shape[0], H)
    out = np.empty((H, W), dtype=bool)
    for r in range(0, H, rows):
        s = slice(r, r + rows)
        t = ty[s, None]
        out[s] = cols[y0[s]] * (1 - t) + cols[y1[s]] * t > 0
    return out


def outline(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """Pixels of ``mask`` within ``width`` pixels of its border (inner outline), (H, W) bool."""
    from scipy import ndimage

    inner = ndimage.binary_erosion(mask, iterations=width, border_value=1)
    return mask & ~inner


def draw_outline(image: np.ndarray, mask: np.ndarray, color=(0, 191, 255)) -> np.ndarray:
    """``image`` (h, w, 3) with the outline of ``mask`` (any resolution, resized to the image's by
    nearest neighbour) drawn in ``color``, about 1/300 of the image side wide."""
    h, w = image.shape[:2]
    if mask.shape != (h, w):
        small = Image.fromarray(mask.astype(np.uint8) * 255).resize(
            (w, h), Image.Resampling.NEAREST
        )
        mask = np.asarray(small) > 127
    out = image.copy()
    out[outline(mask, width=max(1, round(max(h, w) / 300)))] = color
    return out


def tint(rgb: np.ndarray, mask: np.ndarray, color, alpha: float) -> np.ndarray:
    """``rgb`` (float, any scale) with ``color`` (same scale) blended in at ``alpha`` where
    ``mask`` is true."""
    out = rgb.copy()
    out[mask] = (1 - alpha) * out[mask] + alpha * np.asarray(color)
    return out


def write_png(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as PNG atomically (temp file + rename): an interrupted write never
    leaves a truncated file under ``path``."""
    img = Image.fromarray(array)
    store.atomic_write(Path(path), lambda f: img.save(f, format="PNG"))
    os.chmod(path, 0o644)  # mkstemp's 0600 would hide the masks from other users
