"""PH2 data: load (find the cases, decode, resize, binarise, cache), split; re-exports fetch and
synthetic data. ``load_dataset`` loads PH2 or any folder of image/mask pairs (``seglib.data.folder``).

Resizing, the same at every size: images are converted to RGB and resized with Pillow's bilinear
filter, which is anti-aliased when shrinking (its support widens with the scale factor, so each
output pixel averages the input pixels it covers). Masks of any mode (1-bit, L, RGB 0/255; L with
0/1 values too) are converted to grayscale in [0, 1], resized the same way as floats, then
binarised at 0.5. Aspect ratio is not kept (PH2 images are about 4:3; every size is square).

Loaded tensors are cached per (dataset identity, size) in ``cache_dir()/tensors``: an archive is
identified by its name, size and modification time, a folder by its path and the size and
modification time of every image and mask file it uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from seglib.data import folder
from seglib.data.cache import cache_dir, read_tensors, tensor_path
from seglib.data.fetch import (
    archive_key,
    extract_cached,
    fetch_ph2,
    find_images_dir,
    is_case_dir,
)
from seglib.data.imageio import read_levels, read_square, square_mask
from seglib.data.synth import make_synthetic_ph2
from seglib.environ import progress_disabled
from seglib.errors import PH2Error
from seglib.store import save_torch

IMAGE_SUFFIXES = (".bmp", ".png", ".jpg", ".jpeg")


@dataclass
class PH2Data:
    """A loaded dataset: ``images`` uint8 (N,3,H,W), ``masks`` uint8 0/1 (N,1,H,W), ``names``
    sorted, and ``source``, the dataset's name ("PH2", or a paired folder's or archive's name)."""

    images: torch.Tensor
    masks: torch.Tensor
    names: list[str]
    source: str = "PH2"

    def __len__(self) -> int:
        return len(self.names)


# --- finding the files -----------------------------------------------------------------------


def _image_in(case: Path, suffix: str, what: str) -> Path:
    """The image file in ``case/<name><suffix>/``, preferring one named after the folder."""
    folder = case / f"{case.name}{suffix}"
    files = sorted(f for f in folder.glob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise PH2Error(f"{case}: no {what} (expected a BMP/PNG/JPEG file in {folder})")
    preferred = [f for f in files if f.stem in (case.name, f"{case.name}{suffix}")]
    return (preferred or files)[0]


def case_files(images_dir: Path) -> list[tuple[str, Path, Path]]:
    """``(name, image, mask)`` for each ``IMDnnn`` case folder in ``images_dir``, sorted by name.
    Anything else in the folder, and the ``IMDnnn_roi`` colour masks, are ignored."""
    cases = sorted((c for c in Path(images_dir).iterdir() if is_case_dir(c)), key=lambda c: c.name)
    if not cases:
        raise PH2Error(f"{images_dir}: no PH2 case folders (IMDnnn)")
    return [
        (
            c.name,
            _image_in(c, "_Dermoscopic_Image", "dermoscopic image"),
            _image_in(c, "_lesion", "lesion mask"),
        )
        for c in cases
    ]


# --- decoding --------------------------------------------------------------------------------


def _decode(cases: list[tuple[str, Path, Path]], size: int, progress: bool | None) -> PH2Data:
    images = np.empty((len(cases), size, size, 3), np.uint8)
    masks = np.empty((len(cases), size, size), np.uint8)
    bar = tqdm(cases, desc=f"PH2 {size}px", unit="img", disable=progress_disabled(progress))
    for i, (_, image, mask) in enumerate(bar):
        images[i] = read_square(image, size)[0]
        masks[i] = square_mask(read_levels(mask)[0], size)
    return PH2Data(
        images=torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
        masks=torch.from_numpy(masks)[:, None].contiguous(),
        names=[name for name, _, _ in cases],
    )


# --- cache -----------------------------------------------------------------------------------


def _folder_identity(images_dir: Path, cases: list[tuple[str, Path, Path]]) -> str:
    parts = [str(Path(images_dir).resolve())]
    for name, image, mask in cases:
        for f in (image, mask):
            st = f.stat()
            parts.append(f"{name}/{f.parent.name}/{f.name}:{st.st_size}:{st.st_mtime_ns}")
    return "\n".join(parts)


# --- public ----------------------------------------------------------------------------------


def load_ph2(
    root: Path, size: int = 256, *, cache: bool = True, progress: bool | None = None
) -> PH2Data:
    """Load PH2 (or synthetic PH2) as ``size`` x ``size`` tensors, sorted by case name.

    Args:
        root: the folder that contains ``PH2 Dataset images``, that folder itself, the top
            ``PH2Dataset`` folder, or an archive of them (RAR, ZIP, TAR, TAR.GZ/XZ/BZ2), which is
            extracted once into ``cache_dir()`` (never beside the archive).
        size: output side in pixels.
        cache: read and write the processed-tensor cache in ``cache_dir()/tensors``.
        progress: show a progress bar (default: tqdm decides; off when env ``CI`` is set).

    Returns:
        PH2Data with ``images`` uint8 (N,3,size,size), ``masks`` uint8 0/1 (N,1,size,size) and
        ``names`` ("IMD002", ...).

    Raises:
        PH2Error: root not found, no case folders, a case without image or mask, an unreadable,
            truncated or empty image, or a corrupt archive; the message names the path.
    """
    root = _checked(root, size, "a PH2 folder or archive")
    if root.is_file():
        identity, cases = f"archive {archive_key(root)}", None  # cheap: no extraction when cached
    else:
        images_dir = find_images_dir(root)
        cases = case_files(images_dir)
        identity = _folder_identity(images_dir, cases)
    path = tensor_path("ph2", identity, size)
    if cache and (d := read_tensors(path, size)) is not None:
        return PH2Data(**d)
    if cases is None:
        cases = case_files(find_images_dir(extract_cached(root)))
    data = _decode(cases, size, progress)
    if cache:
        save_torch(path, {"images": data.images, "masks": data.masks, "names": data.names})
    return data


def _checked(root: Path, size: int, what: str) -> Path:
    if int(size) != size or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    root = Path(root).expanduser()
    if not root.exists():
        raise PH2Error(f"{root}: not found (expected {what})")
    return root


def is_ph2(tree: Path) -> bool:
    """Whether the folder ``tree`` holds PH2 case folders (itself or up to 2 levels down)."""
    try:
        find_images_dir(tree)
    except PH2Error:
        return False
    return True


def load_dataset(
    root: Path, size: int = 256, *, cache: bool = True, progress: bool | None = None
) -> PH2Data:
    """Load PH2 (see :func:`load_ph2`) or a folder of images and masks paired by name (layouts:
    ``seglib.data.folder``), given as a folder or an archive of one; the layout is recognised
    automatically, PH2 first. Returns PH2Data with ``source`` "PH2" or the folder's (archive's)
    name. Decoded tensors are cached per size in ``cache_dir()`` (the data may be read-only).

    Raises:
        PH2Error: as :func:`load_ph2` for PH2; for a paired folder ``seglib.data.folder.FolderError``
            naming the file: no images, an image without mask or a mask without image, a mask
            whose size differs from its image's, two files for one case, an unreadable file.
    """
    root = _checked(root, size, "a dataset folder or archive")
    kw = {"cache": cache, "progress": progress}
    if root.is_dir():
        if is_ph2(root):
            return load_ph2(root, size, **kw)
        return PH2Data(**folder.load_pairs(root, size, source=root.resolve().name, **kw))
    ident = f"archive {archive_key(root)}"
    if cache:  # either layout's cached tensors, without extracting the archive
        for kind in ("folder", "ph2"):
            if (d := read_tensors(tensor_path(kind, ident, size), size)) is not None:
                return PH2Data(**d)
    tree = extract_cached(root)
    if is_ph2(tree):
        return load_ph2(root, size, **kw)
    name = root.name.split(".")[0] or root.name
    return PH2Data(**folder.load_pairs(tree, size, source=name, ident=ident, **kw))


SYNTHETIC = "synthetic PH2-like data"
"""What runs on ``--data synthetic`` record as their dataset (reports are headed with it)."""


def resolve_data(data: str, size: int, quiet: bool = False):
    """Load the dataset named by ``data``: a path (PH2 or paired images/masks, folder or
    archive), "synthetic" (PH2's layout, generated: named so, never "PH2") or "download"."""
    if data == "synthetic":
        root = make_synthetic_ph2(cache_dir() / "synthetic", n=200, seed=0)
    elif data == "download":
        root = fetch_ph2(cache_dir() / "ph2")
    else:
        root = Path(data).expanduser()
        if not root.exists():
            raise FileNotFoundError(f"--data {data}: no such file or folder")
    loaded = load_dataset(root, size=size, progress=None if not quiet else False)
    if data == "synthetic":
        loaded.source = SYNTHETIC
    return loaded


def split_indices(
    n: int, seed: int = 0, fractions: tuple[float, float, float] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random (train, val, test) index arrays, 50% / 25% / 25% (100/50/50 for n=200).

    val and test get ``n // 4`` each, train the rest; with ``fractions`` (train, val, test),
    non-negative and summing to 1, val and test get ``round(n * fraction)`` each, train the rest.
    Each array is sorted. The permutation is ``numpy.random.default_rng(seed).permutation(n)``,
    so the split is deterministic per seed.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    perm = np.random.default_rng(seed).permutation(n)
    if fractions is None:
        n_val = n_test = n // 4
    else:
        fr = [float(f) for f in fractions]
        if len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1) > 1e-6:
            raise ValueError(
                f"split fractions must be 3 numbers >= 0 summing to 1, got {fractions}"
            )
        n_val = round(n * fr[1])
        n_test = min(round(n * fr[2]), n - n_val)
    n_train = n - n_val - n_test
    train, val, test = np.split(perm, [n_train, n_train + n_val])
    return np.sort(train), np.sort(val), np.sort(test)
