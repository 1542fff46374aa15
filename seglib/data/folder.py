"""Any folder of images and masks paired by name: find the pairs, decode them fast, cache them.

Recognised layouts (``root`` is the folder given to ``--data``; sub-folders are searched up to
``MAX_DEPTH`` levels, hidden ones skipped)::

    root/images/a.jpg          root/masks/a.png            same stems in two folders
    root/images/a.jpg          root/masks/a_mask.png       mask stems with a suffix
    root/ISIC_0000000.jpg      root/ISIC_0000000_segmentation.png     ISIC, one folder
    root/ISIC2018_Task1-2_Training_Input/ISIC_0000000.jpg              ISIC, two folders
    root/ISIC2018_Task1_Training_GroundTruth/ISIC_0000000_segmentation.png

A file is a mask when its stem ends with one of ``MASK_SUFFIXES``, or when the deepest folder
on its path below ``root`` with a telling name is mask-like (``MASK_DIR_WORDS``: masks, labels,
GroundTruth, ...) rather than image-like (``IMAGE_DIR_WORDS``: images, Input, ...); every other
image file is an image. Its case name is the stem without that suffix. ISIC's
``*_superpixels.png`` files are skipped. Images: JPEG, PNG or BMP of any size and aspect; masks:
any mode, 0/1 or 0/255, the size of their image.

Decoding for speed: JPEGs are decoded at 1/2, 1/4 or 1/8 scale by libjpeg's DCT scaling
(``Image.draft``) when the result is still at least the output size, and large images are first
box-reduced by an integer factor (``resize(reducing_gap=3)``; Pillow documents the result as
indistinguishable from a plain resize in most cases); then the same anti-aliased bilinear resize
and mask binarisation as for PH2 (``seglib.data.ph2``). Files are decoded in a thread pool: Pillow
releases the GIL while decoding and resizing.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from seglib.data.cache import read_tensors, tensor_path
from seglib.data.imageio import MASK_SIZE_HINT, read_levels, read_square, square_mask
from seglib.environ import progress_disabled
from seglib.errors import FolderError
from seglib.store import save_torch

SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
MASK_SUFFIXES = ("_segmentation", "_mask")
MASK_DIR_WORDS = ("mask", "groundtruth", "segmentation", "label", "annotation")
IMAGE_DIR_WORDS = ("image", "img", "input")
SKIP_SUFFIXES = ("_superpixels",)
MAX_DEPTH = 3


@dataclass(frozen=True)
class Pair:
    """One case: its name (the image stem) and its image and mask files. A pair found by
    ``find_pairs(partial=True)`` may lack one of them (None), ``problem`` then says which and
    what to do."""

    name: str
    image: Path | None
    mask: Path | None
    problem: str = ""


# --- finding the pairs -----------------------------------------------------------------------


def dir_kind(name: str) -> str | None:
    """ "mask" when a folder name contains a ``MASK_DIR_WORDS`` word (case, spaces, ``-`` and
    ``_`` ignored) or is ``gt``; else "image" when it contains an ``IMAGE_DIR_WORDS`` word;
    else None."""
    flat = re.sub(r"[\s_-]", "", name.lower())
    if flat == "gt" or any(w in flat for w in MASK_DIR_WORDS):
        return "mask"
    return "image" if any(w in flat for w in IMAGE_DIR_WORDS) else None


def _files(root: Path) -> list[Path]:
    """Image files under ``root`` up to ``MAX_DEPTH`` folders down; hidden entries skipped."""
    out = []
    for here, dirs, files in os.walk(root):
        depth = len(Path(here).relative_to(root).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and depth < MAX_DEPTH)
        out += [
            Path(here) / f
            for f in sorted(files)
            if not f.startswith(".") and Path(f).suffix.lower() in SUFFIXES
        ]
    return out


def classify(path: Path, root: Path) -> tuple[str, bool] | None:
    """``(case name, is_mask)`` of an image file under ``root``, or None to skip it."""
    stem = path.stem
    low = stem.lower()
    if low.endswith(SKIP_SUFFIXES):
        return None
    for suffix in MASK_SUFFIXES:
        if low.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)], True
    kinds = [k for p in path.relative_to(root).parts[:-1] if (k := dir_kind(p))]
    return stem, bool(kinds) and kinds[-1] == "mask"


def _unique(files: dict[str, list[Path]], what: str) -> dict[str, Path]:
    for name, paths in files.items():
        if len(paths) > 1:
            listed = " and ".join(str(p) for p in paths)
            raise FolderError(
                f"{paths[0]}: duplicate {what} for case {name!r}: {listed}; keep one of them"
            )
    return {name: paths[0] for name, paths in files.items()}


def find_pairs(root: Path, partial: bool = False) -> list[Pair]:
    """The (image, mask) pairs under ``root``, sorted by case name.

    ``partial``: an image without mask (or a mask without image) is a pair lacking that file,
    its ``problem`` the message, instead of an error; the other pairs and their order are the
    same as in the complete folder.

    Raises:
        FolderError: no image files, no masks, two images (or two masks) for one case (e.g.
            ``a.jpg`` and ``a.png``), or (unless ``partial``) an image without mask or a mask
            without image; the message names the file.
    """
    root = Path(root)
    images, masks = {}, {}
    for f in _files(root):
        kind = classify(f, root)
        if kind is not None:
            (masks if kind[1] else images).setdefault(kind[0], []).append(f)
    if not images and not masks:
        raise FolderError(
            f"{root}: no images (expected JPEG/PNG/BMP images and masks: images/ + masks/, "
            "or ISIC_nnnnnnn.jpg + ISIC_nnnnnnn_segmentation.png); point --data at the "
            "folder that holds them"
        )
    if not masks:
        raise FolderError(
            f"{root}: no masks (expected a masks/ folder beside images/, or mask files named "
            f"<image stem>{' or <image stem>'.join(MASK_SUFFIXES)}.png); add the masks, or "
            "point --data at a folder that has them"
        )
    images, masks = _unique(images, "image"), _unique(masks, "mask")
    lone = [n for n in sorted(images) if n not in masks]
    lone += [n for n in sorted(masks) if n not in images]
    if lone and not partial:
        raise FolderError(_lone(lone[0], images, masks))
    return [
        Pair(n, images.get(n), masks.get(n), _lone(n, images, masks) if n in lone else "")
        for n in sorted(images.keys() | masks.keys())
    ]


def _lone(name: str, images: dict, masks: dict) -> str:
    """The message of a case that has an image or a mask but not both."""
    if name in images:
        return (
            f"{images[name]}: image without mask (case {name!r}); add its mask, named as "
            "the others, or remove the image"
        )
    return f"{masks[name]}: mask without image (case {name!r}); add its image, or remove the mask"


def describe_layout(root: Path, pairs: list[Pair]) -> str:
    """How the pairs under ``root`` are laid out, in words, from the most common placement:
    ``images in images/, masks in masks/ named <name>_mask.png`` or ``images and masks in
    one folder, masks named <name>_segmentation.png``."""
    root, seen = Path(root), {}
    for p in pairs:
        if p.image is not None and p.mask is not None:
            where = [f"{q.parent.relative_to(root).as_posix()}/" for q in (p.image, p.mask)]
            suffix = p.mask.stem[len(p.name) :]
            key = (*where, f"<name>{suffix}{p.mask.suffix.lower()}")
            seen[key] = seen.get(key, 0) + 1
    if not seen:
        return "no complete image/mask pair"
    images, masks, named = max(seen, key=seen.get)
    if images == masks:
        place = "in the top folder" if images == "./" else f"in {images}"
        return f"images and masks {place}, masks named {named}"
    return f"images in {images}, masks in {masks} named {named}"


def looks_like_pairs(root: Path) -> bool:
    """Whether ``root`` holds at least one mask file of this layout (cheap check, no pairing)."""
    root = Path(root)
    return any((k := classify(f, root)) is not None and k[1] for f in _files(root))


# --- decoding --------------------------------------------------------------------------------


def read_pair(pair: Pair, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(image uint8 (size,size,3), mask uint8 0/1 (size,size))`` of one pair; FolderError if
    the mask's size differs from its image's."""
    rgb, full = read_square(pair.image, size, fast=True, error=FolderError)
    levels, (w, h) = read_levels(pair.mask, error=FolderError)
    if (w, h) != full:
        raise FolderError(
            f"{pair.mask}: mask is {w}x{h} but its image {pair.image.name} is {full[0]}x{full[1]}; "
            f"{MASK_SIZE_HINT}"
        )
    return rgb, square_mask(levels, size, fast=True)


def decode(pairs: list[Pair], size: int, progress: bool | None = None, desc: str = ""):
    """``(images uint8 (N,3,size,size), masks uint8 (N,1,size,size))`` tensors of ``pairs``,
    decoded by ``os.cpu_count()`` threads (at most 8)."""
    images = np.empty((len(pairs), size, size, 3), np.uint8)
    masks = np.empty((len(pairs), size, size), np.uint8)
    workers = max(1, min(8, os.cpu_count() or 1))
    bar = tqdm(total=len(pairs), desc=f"{desc} {size}px", unit="img",
               disable=progress_disabled(progress))  # fmt: skip
    with ThreadPoolExecutor(workers) as pool, bar:
        for i, (image, mask) in enumerate(pool.map(lambda p: read_pair(p, size), pairs)):
            images[i], masks[i] = image, mask
            bar.update()
    return (
        torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
        torch.from_numpy(masks)[:, None].contiguous(),
    )


# --- cache -----------------------------------------------------------------------------------


def identity(root: Path, pairs: list[Pair]) -> str:
    """Cache identity of a folder: its path and the relative path, size and modification time
    of every file it uses."""
    root = Path(root)
    parts = [f"folder {root.resolve()}"]
    for p in pairs:
        for f in (p.image, p.mask):
            st = f.stat()
            parts.append(f"{f.relative_to(root).as_posix()}:{st.st_size}:{st.st_mtime_ns}")
    return "\n".join(parts)


def load_pairs(
    root: Path,
    size: int,
    *,
    source: str,
    ident: str | None = None,
    cache: bool = True,
    progress: bool | None = None,
) -> dict:
    """``dict(images, masks, names, source)`` of the pairs under ``root`` at ``size`` px, from
    the cache when it holds them (``ident``: the cache identity, default the folder's)."""
    pairs = None
    if ident is None:
        pairs = find_pairs(root)
        ident = identity(root, pairs)
    path = tensor_path("folder", ident, size)
    if cache and (d := read_tensors(path, size)) is not None:
        return d
    pairs = pairs or find_pairs(root)
    images, masks = decode(pairs, size, progress, desc=source)
    d = {"images": images, "masks": masks, "names": [p.name for p in pairs], "source": source}
    if cache:
        save_torch(path, d)
    return d
