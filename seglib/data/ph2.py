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

from dataclasses import dataclass, field
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
from seglib.data.split import split_indices  # noqa: F401  (re-exported)
from seglib.data.synth import SYNTHETIC, make_synthetic_ph2, synthetic_name
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
    parts: list = field(default_factory=list)  # several datasets: seglib.data.multi.concat

    def __len__(self) -> int:
        return len(self.names)


# --- finding the files -----------------------------------------------------------------------


def _image_in(case: Path, suffix: str, what: str) -> Path:
    """The image file in ``case/<name><suffix>/``, preferring one named after the folder."""
    folder = case / f"{case.name}{suffix}"
    files = sorted(f for f in folder.glob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise PH2Error(
            f"{case}: no {what} (expected a BMP/PNG/JPEG file in {folder}); restore it from "
            "the PH2 archive, or remove the case folder"
        )
    preferred = [f for f in files if f.stem in (case.name, f"{case.name}{suffix}")]
    return (preferred or files)[0]


def case_dirs(images_dir: Path) -> list[Path]:
    """The ``IMDnnn`` case folders in ``images_dir``, sorted by name (PH2Error if none)."""
    cases = sorted((c for c in Path(images_dir).iterdir() if is_case_dir(c)), key=lambda c: c.name)
    if not cases:
        raise PH2Error(
            f"{images_dir}: no PH2 case folders (IMDnnn); point --data at the folder that "
            "holds them, or re-extract the PH2 archive"
        )
    return cases


def case_of(case: Path) -> tuple[str, Path, Path]:
    """``(name, image, mask)`` of one case folder (PH2Error naming the folder if one lacks)."""
    return (
        case.name,
        _image_in(case, "_Dermoscopic_Image", "dermoscopic image"),
        _image_in(case, "_lesion", "lesion mask"),
    )


def case_files(images_dir: Path) -> list[tuple[str, Path, Path]]:
    """``(name, image, mask)`` for each ``IMDnnn`` case folder in ``images_dir``, sorted by name.
    Anything else in the folder, and the ``IMDnnn_roi`` colour masks, are ignored."""
    return [case_of(c) for c in case_dirs(images_dir)]


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
    source = None  # an archive's is read from its extracted tree, then cached with the tensors
    if root.is_file():
        identity, cases = _archive_identity(root), None  # cheap: no extraction when cached
    else:
        images_dir = find_images_dir(root)
        cases = case_files(images_dir)
        identity = _folder_identity(images_dir, cases)
        source = synthetic_name(images_dir) or "PH2"
    path = tensor_path("ph2", identity, size)
    if cache and (d := read_tensors(path, size)) is not None:
        return PH2Data(**(d | ({"source": source} if source else {})))
    if cases is None:
        images_dir = find_images_dir(extract_cached(root))
        cases, source = case_files(images_dir), synthetic_name(images_dir) or "PH2"
    data = _decode(cases, size, progress)
    data.source = source
    if cache:
        save_torch(path, {"images": data.images, "masks": data.masks, "names": data.names,
                          "source": source})  # fmt: skip
    return data


def _archive_identity(root: Path) -> str:
    """The tensor-cache identity of a PH2-layout archive (" named": its cache records whether
    the archive holds synthetic data; older caches did not)."""
    return f"archive {archive_key(root)} named"


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
        name = synthetic_name(root) or root.resolve().name
        return PH2Data(**folder.load_pairs(root, size, source=name, **kw) | {"source": name})
    ident = f"archive {archive_key(root)}"
    if cache:  # either layout's cached tensors, without extracting the archive
        for kind, key in (("folder", ident), ("ph2", _archive_identity(root))):
            if (d := read_tensors(tensor_path(kind, key, size), size)) is not None:
                return PH2Data(**d)
    tree = extract_cached(root)
    if is_ph2(tree):
        return load_ph2(root, size, **kw)
    name = _marked(tree) or root.name.split(".")[0] or root.name
    return PH2Data(**folder.load_pairs(tree, size, source=name, ident=ident, **kw))


def _marked(tree: Path) -> str | None:
    """The synthetic name (:func:`synthetic_name`) of an extracted tree or its one top folder."""
    tops = [d for d in Path(tree).iterdir() if d.is_dir() and not d.name.startswith(".")]
    return synthetic_name(tree) or (synthetic_name(tops[0]) if len(tops) == 1 else None)


DOWNLOADS = ("download", "download-isic2018")
"""``--data`` words that fetch a dataset into the cache: PH2, the ISIC 2018 Task 1 training set."""


def resolve_data(data: str, size: int, quiet: bool = False):
    """Load the dataset(s) named by ``data``: a path (PH2 or paired images/masks, folder or
    archive), "synthetic" (PH2's layout, generated: named so, never "PH2"), "download" (PH2),
    "download-isic2018" (:func:`seglib.data.isic2018.fetch_isic2018`), or several of these
    separated by commas (concatenated, :func:`seglib.data.multi.concat`)."""
    from seglib.data import multi

    names = multi.names_of(data)
    if not names:
        raise ValueError(f"--data {data!r}: name a dataset")
    loaded = [_resolve_one(d, size, quiet) for d in names]
    if len(loaded) == 1:
        return loaded[0]
    return multi.concat(loaded, [d.source in ("PH2", SYNTHETIC) for d in loaded])


def data_missing(data: str) -> str | None:
    """The first path of ``data`` (as :func:`resolve_data` reads it) that does not exist."""
    from seglib.data import multi

    words = ("synthetic", *DOWNLOADS)
    return next(
        (d for d in multi.names_of(data) if d not in words and not Path(d).expanduser().exists()),
        None,
    )


def data_root(data: str, quiet: bool = False) -> Path:
    """The folder or archive one ``--data`` word or path names: ``synthetic`` (generated),
    ``download`` (PH2) and ``download-isic2018`` are fetched into the cache first."""
    progress = None if not quiet else False
    if data == "synthetic":
        return make_synthetic_ph2(cache_dir() / "synthetic", n=200, seed=0)
    if data == "download":
        return fetch_ph2(cache_dir() / "ph2")
    if data == "download-isic2018":
        from seglib.data.isic2018 import fetch_isic2018

        return fetch_isic2018(cache_dir() / "isic2018", progress=progress)
    root = Path(data).expanduser()
    if not root.exists():
        raise FileNotFoundError(
            f"--data {data}: no such file or folder; check the path, or use --data synthetic "
            "or --data download"
        )
    return root


def _resolve_one(data: str, size: int, quiet: bool):
    root = data_root(data, quiet)
    return load_dataset(root, size=size, progress=None if not quiet else False)
