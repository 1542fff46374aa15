"""Synthetic PH2: dermoscopy-like images with exact lesion masks, in the official folder layout.

Each image: skin-toned background with low-frequency colour noise; one irregular lesion (a polar
radius with random harmonics, so the border is non-convex) whose colour goes from brown to almost
black, with a darker centre or rim, blotches and a soft border; a few dark hair strands, also
across the lesion; a dark vignette in the corners. The mask is the lesion only (hair over the
lesion is lesion). Image ``i`` depends only on ``(seed, i, shape)``, not on ``n``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from seglib.data.fetch import IMAGES_DIR
from seglib.errors import PH2Error

MARKER = ".synthetic.json"
"""File in ``PH2 Dataset images`` recording the parameters it was generated with."""
_VERSION = 1
SYNTHETIC = "synthetic PH2-like data"
"""The name of synthetic data in PH2's layout (``--data synthetic`` or a ``synth`` folder)."""
_BINS = 2048  # resolution of the lesion's radius-per-angle table
_FRACTION = (0.04, 0.85)  # lesion fraction of the image, resampled until inside


def _interp_matrix(n: int, cells: int) -> np.ndarray:
    """(n, cells + 1) weights that interpolate ``cells + 1`` knots to ``n`` points (smoothstep)."""
    t = np.linspace(0, cells, n, endpoint=False)
    i0 = t.astype(int)
    f = t - i0
    f = f * f * (3 - 2 * f)
    m = np.zeros((n, cells + 1), np.float32)
    m[np.arange(n), i0], m[np.arange(n), i0 + 1] = 1 - f, f
    return m


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int, ch: int = 1):
    """Low-frequency noise, shape (ch, H, W): a coarse Gaussian grid (``cells`` cells down the
    height, as many per unit length across) interpolated to full size."""
    h, w = shape
    cy, cx = cells, max(1, round(cells * w / h))
    grid = rng.standard_normal((ch, cy + 1, cx + 1)).astype(np.float32)
    return _interp_matrix(h, cy) @ grid @ _interp_matrix(w, cx).T


def _lesion(rng, yy, xx):
    """Signed distance-like field ``r(theta) - d`` (pixels, > 0 inside) of an irregular lesion."""
    h, w = yy.shape
    for _ in range(1000):
        cy, cx = h * rng.uniform(0.35, 0.65), w * rng.uniform(0.35, 0.65)
        radius = np.sqrt(rng.uniform(0.05, 0.65) * h * w / np.pi)
        aspect, tilt = rng.uniform(0.7, 1.3), rng.uniform(0, np.pi)
        dy, dx = yy - cy, xx - cx
        u = (dx * np.cos(tilt) + dy * np.sin(tilt)) / aspect
        v = -dx * np.sin(tilt) + dy * np.cos(tilt)
        k = np.arange(2, 9)
        amp = rng.uniform(0, 0.35, k.size) / k**0.7
        phase = rng.uniform(0, 2 * np.pi, k.size)
        angles = np.linspace(-np.pi, np.pi, _BINS + 1)
        wobble = (amp * np.cos(k * angles[:, None] + phase)).sum(1)
        r_of_theta = (radius * np.clip(1 + wobble, 0.35, None)).astype(np.float32)
        index = ((np.arctan2(v, u) + np.pi) * (_BINS / (2 * np.pi))).astype(np.int32)
        field = r_of_theta[index] - np.hypot(u, v)
        if _FRACTION[0] <= (field > 0).mean() <= _FRACTION[1]:
            return field
    raise ValueError(f"no lesion fits an image of {h}x{w} pixels")


def _hair(rng, shape, count):
    """Boolean mask of ``count`` thin dark curves (quadratic Bezier strands), 1-2 px wide."""
    h, w = shape
    mask = np.zeros(shape, bool)
    t = np.linspace(0, 1, 2 * (h + w))[:, None]
    for _ in range(count):
        p0, p2 = rng.uniform(-0.1, 1.1, (2, 2)) * (h, w)
        p1 = rng.uniform(0.25, 0.75, 2) * (h, w)  # bend through the middle, where lesions are
        pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
        width = rng.integers(1, 3)
        for oy in range(width):
            for ox in range(width):
                y, x = np.round(pts[:, 0]).astype(int) + oy, np.round(pts[:, 1]).astype(int) + ox
                keep = (y >= 0) & (y < h) & (x >= 0) & (x < w)
                mask[y[keep], x[keep]] = True
    return mask


def _uniform(rng, low, high):
    return rng.uniform(low, high).astype(np.float32)[:, None, None]


def synthetic_case(seed: int, index: int, shape: tuple[int, int] = (192, 256)):
    """One synthetic case ``(image uint8 (H,W,3), mask bool (H,W))``, a pure function of its
    arguments."""
    h, w = shape
    if min(h, w) < 16:
        raise ValueError(f"shape must be at least 16x16, got {shape}")
    rng = np.random.default_rng([seed, index])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    skin = _uniform(rng, [185, 125, 100], [235, 185, 160])
    img = skin + 5 * _smooth_noise(rng, shape, 4, 3) + 12 * _smooth_noise(rng, shape, 6)

    field = _lesion(rng, yy, xx)
    inside = field > 0
    depth = np.clip(field / field.max(), 0, 1)  # 0 at the border, 1 at the deepest point
    light = _uniform(rng, [120, 65, 40], [175, 115, 90])
    dark = _uniform(rng, [30, 20, 15], [85, 55, 50])
    mix = 0.5 + 0.35 * _smooth_noise(rng, shape, 5)[0] + rng.uniform(-0.5, 0.5) * (depth - 0.5)
    colour = light + (dark - light) * np.clip(mix, 0, 1)
    alpha = rng.uniform(0.75, 1.0) * np.clip(field / rng.uniform(1.5, 5) + 0.5, 0, 1)
    img = img * (1 - alpha) + colour * alpha

    hair = _hair(rng, shape, rng.integers(0, 7))
    img = np.where(hair, rng.uniform(25, 60) + 6 * rng.standard_normal(shape, np.float32), img)

    rr = np.hypot((yy - h / 2) / (h / 2), (xx - w / 2) / (w / 2))  # sqrt(2) in the corners
    vignette = rng.uniform(0.5, 0.95) * np.clip((rr - rng.uniform(0.95, 1.25)) / 0.25, 0, 1) ** 2
    img = img * (1 - vignette) + 3 * rng.standard_normal(img.shape, np.float32)
    image = np.clip(img, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    return np.ascontiguousarray(image), inside


def _write_case(folder: Path, name: str, image: np.ndarray, mask: np.ndarray) -> None:
    case = folder / name
    img_dir, mask_dir = case / f"{name}_Dermoscopic_Image", case / f"{name}_lesion"
    img_dir.mkdir(parents=True)
    mask_dir.mkdir()
    Image.fromarray(image).save(img_dir / f"{name}.bmp")
    Image.fromarray(mask).save(mask_dir / f"{name}_lesion.bmp")  # bool -> mode "1"


def make_synthetic_ph2(
    root: Path, n: int = 200, seed: int = 0, *, shape: tuple[int, int] = (192, 256)
) -> Path:
    """Write ``n`` synthetic cases ``IMD001``... in the official PH2 layout under ``root``:
    ``root/PH2Dataset/PH2 Dataset images/IMDxxx/IMDxxx_Dermoscopic_Image/IMDxxx.bmp`` (RGB) and
    ``.../IMDxxx_lesion/IMDxxx_lesion.bmp`` (1-bit); return the dataset root ``root/PH2Dataset``.
    ``shape`` is (H, W) of every image; 200 cases of 192x256 take a few seconds.

    Idempotent: a tree written with the same ``(n, seed, shape)`` is kept as is; one written with
    other parameters is replaced; a ``PH2 Dataset images`` folder not written here is never
    touched (PH2Error). The tree is built in a temporary folder and renamed into place.
    """
    top = Path(root).expanduser() / "PH2Dataset"
    images = top / IMAGES_DIR
    params = {"n": n, "seed": seed, "shape": list(shape), "version": _VERSION}

    def write(tmp: Path) -> None:
        for i in range(n):
            _write_case(tmp, f"IMD{i + 1:03d}", *synthetic_case(seed, i, shape))

    _build(images, params, "make_synthetic_ph2", write)
    return top


def synthetic_name(folder: Path) -> str | None:
    """The dataset name of ``folder`` when this module wrote it (its marker file), else None:
    :data:`SYNTHETIC` for the PH2 layout, the folder's name for a paired layout (with
    "synthetic data" in front when a renamed folder no longer says so)."""
    marker = Path(folder) / MARKER
    if not marker.is_file():
        return None
    try:
        layout = json.loads(marker.read_text()).get("layout", "ph2")
    except (OSError, ValueError, AttributeError):
        layout = "ph2"
    name = Path(folder).resolve().name
    if layout == "ph2":
        return SYNTHETIC
    return name if is_synthetic(name) else f"synthetic data ({name})"


def is_synthetic(name: str) -> bool:
    """Whether a dataset name (``PH2Data.source``, a part of one joined by " + ") says
    synthetic."""
    return "synthetic" in str(name).lower()


def _build(dest: Path, params: dict, who: str, write) -> None:
    """Write a synthetic tree into ``dest`` with ``write(tmp)``, unless ``dest`` already holds
    one made with ``params``: built in a temporary folder beside it, then renamed into place;
    a ``dest`` without this module's marker file is never touched (PH2Error)."""
    if dest.exists():
        marker = dest / MARKER
        if not marker.is_file():
            raise PH2Error(f"{dest}: exists and was not written by {who}")
        if json.loads(marker.read_text()) == params:
            return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".synth-", dir=dest.parent))
    try:
        write(tmp)
        (tmp / MARKER).write_text(json.dumps(params))
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


LAYOUTS = {"isic": "SyntheticISIC", "folders": "SyntheticFolders"}
"""Paired layouts of :func:`make_synthetic_pairs` and the dataset folder each is written to."""


def _write_pair(folder: Path, layout: str, name: str, image: np.ndarray, mask: np.ndarray):
    gray = Image.fromarray(mask.astype(np.uint8) * 255)  # mode "L", 0/255
    if layout == "isic":
        Image.fromarray(image).save(folder / f"{name}.jpg", quality=92)
        gray.save(folder / f"{name}_segmentation.png")
    else:
        Image.fromarray(image).save(folder / "images" / f"{name}.png")
        gray.save(folder / "masks" / f"{name}.png")


def make_synthetic_pairs(
    root: Path,
    n: int = 200,
    seed: int = 0,
    *,
    layout: str = "isic",
    shape: tuple[int, int] = (192, 256),
) -> Path:
    """Write ``n`` synthetic cases (the PH2-like images of :func:`synthetic_case`) in a paired
    layout read by ``seglib.data.load_dataset``; return the dataset folder.

    ``layout="isic"``: ``root/SyntheticISIC/ISIC_0000000.jpg`` (JPEG) with
    ``ISIC_0000000_segmentation.png`` (grayscale 0/255) beside it. ``layout="folders"``:
    ``root/SyntheticFolders/images/case_0000.png`` with ``masks/case_0000.png``. Idempotent and
    careful as :func:`make_synthetic_ph2` (a folder not written here is never touched).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}, ph2")
    top = Path(root).expanduser() / LAYOUTS[layout]
    params = {"n": n, "seed": seed, "shape": list(shape), "layout": layout, "version": _VERSION}

    def write(tmp: Path) -> None:
        if layout == "folders":
            (tmp / "images").mkdir()
            (tmp / "masks").mkdir()
        for i in range(n):
            name = f"ISIC_{i:07d}" if layout == "isic" else f"case_{i:04d}"
            _write_pair(tmp, layout, name, *synthetic_case(seed, i, shape))

    _build(top, params, "make_synthetic_pairs", write)
    return top
