"""Reading real-world image files for prediction, and writing masks atomically.

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

from . import store
from .fetch import PH2Error

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
        raise PH2Error(f"{path}: no such image file") from None
    except Image.DecompressionBombError as e:
        raise PH2Error(f"{path}: image too large to open safely ({e})") from None
    except (OSError, ValueError, SyntaxError) as e:  # PIL: OSError mostly, some codecs others
        raise PH2Error(f"{path}: cannot read image ({e})") from None


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


def write_png(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as PNG atomically (temp file + rename): an interrupted write never
    leaves a truncated file under ``path``."""
    img = Image.fromarray(array)
    store._atomic(Path(path), lambda f: img.save(f, format="PNG"))
    os.chmod(path, 0o644)  # mkstemp's 0600 would hide the masks from other users
