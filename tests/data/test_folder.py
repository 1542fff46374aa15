"""Paired image/mask folders (seglib.data.folder via seglib.data.load_dataset): layouts, decoding,
errors naming the file, cache, archives, split fractions, synthetic layouts."""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seglib.data import folder
from seglib.data.folder import find_pairs
from seglib.data.ph2 import PH2Data, load_dataset, load_ph2, split_indices
from seglib.data.synth import make_synthetic_pairs, synthetic_case
from seglib.errors import FolderError

SHAPE = (48, 64)  # (H, W) of the synthetic cases: 4x shrink to 12x16, block-averaged below


@pytest.fixture(scope="module")
def pairs_root(tmp_path_factory):
    """Both synthetic paired layouts, 6 cases of 48x64 (seed 1), shared: copy before changing."""
    root = tmp_path_factory.mktemp("pairs")
    return {
        layout: make_synthetic_pairs(root, n=6, seed=1, layout=layout, shape=SHAPE)
        for layout in ("isic", "folders")
    }


def copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


def gray(h: int, w: int, value: int = 120) -> Image.Image:
    return Image.fromarray(np.full((h, w, 3), value, np.uint8))


def half_mask(h: int, w: int, scale: int = 255, mode: str = "L") -> Image.Image:
    m = np.zeros((h, w), np.uint8)
    m[:, : w // 2] = scale
    im = Image.fromarray(m)
    return im.convert(mode) if mode != "L" else im


def box_truth(i: int) -> tuple[np.ndarray, np.ndarray]:
    """Generator arrays of case ``i`` shrunk 48x64 -> 16x16 by plain block averaging."""
    image, mask = synthetic_case(1, i, SHAPE)
    return image.reshape(16, 3, 16, 4, 3).mean((1, 3)), mask.reshape(16, 3, 16, 4).mean((1, 3))


# --- layouts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["isic", "folders"])
def test_synthetic_layouts_match_the_generator(pairs_root, cache, layout):
    d = load_dataset(pairs_root[layout], size=16)
    assert isinstance(d, PH2Data) and len(d) == 6
    prefix = {"isic": "ISIC_000000", "folders": "case_000"}[layout]
    assert d.names == [f"{prefix}{i}" for i in range(6)]
    assert d.source == pairs_root[layout].name
    assert d.images.dtype == torch.uint8 and d.images.shape == (6, 3, 16, 16)
    assert d.masks.dtype == torch.uint8 and d.masks.shape == (6, 1, 16, 16)
    for i in range(6):
        box_img, box_mask = box_truth(i)
        got = d.images[i].permute(1, 2, 0).numpy().astype(float)
        assert np.abs(got - box_img).mean() < 6  # JPEG (isic) or PNG (folders), then resized
        ours, truth = d.masks[i, 0].numpy().astype(bool), box_mask > 0.5
        assert (ours & truth).sum() / (ours | truth).sum() > 0.85


def test_isic_in_two_folders_and_images_masks_with_suffix(pairs_root, cache, tmp_path):
    """ISIC's own download layout (input / GroundTruth folders, superpixel files, a licence) and
    images/ + masks/ with ``_mask`` stems load the same data as the one-folder layout."""
    one = load_dataset(pairs_root["isic"], size=16)
    two = tmp_path / "isic2"
    inp, gt = two / "ISIC2018_Task1-2_Training_Input", two / "ISIC2018_Task1_Training_GroundTruth"
    inp.mkdir(parents=True)
    gt.mkdir()
    for f in pairs_root["isic"].glob("*.*"):
        shutil.copy(f, gt if "_segmentation" in f.name else inp)
    (inp / "LICENSE.txt").write_text("CC-BY-NC")
    gray(48, 64).save(inp / "ISIC_0000000_superpixels.png")
    sub = tmp_path / "sub"
    (sub / "images").mkdir(parents=True)
    (sub / "masks").mkdir()
    for f in pairs_root["isic"].glob("*.*"):
        if "_segmentation" in f.name:
            shutil.copy(f, sub / "masks" / f.name.replace("_segmentation", "_mask"))
        else:
            shutil.copy(f, sub / "images" / f.name)
    for root in (two, sub):
        d = load_dataset(root, size=16)
        assert d.names == one.names
        assert torch.equal(d.images, one.images) and torch.equal(d.masks, one.masks)


def test_mask_modes_image_formats_and_sizes(tmp_path, cache):
    """Masks 1-bit, L 0/255, L 0/1, RGB 0/255; images JPEG, PNG (RGBA) and BMP of different sizes
    and aspects: every mask gives the left half, every image its colour."""
    root = tmp_path / "mine"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    cases = {
        "a": ((48, 64), "bmp", half_mask(48, 64, 255, "1")),
        "b": ((60, 40), "png", half_mask(60, 40)),
        "c": ((32, 96), "jpg", half_mask(32, 96, 1)),
        "d": ((45, 60), "jpeg", half_mask(45, 60, 255, "RGB")),
    }
    for name, ((h, w), ext, mask) in cases.items():
        im = gray(h, w, 200)
        (im.convert("RGBA") if ext == "png" else im).save(root / "images" / f"{name}.{ext}")
        mask.save(root / "masks" / f"{name}.png")
    d = load_dataset(root, size=8)
    assert d.names == ["a", "b", "c", "d"] and d.source == "mine"
    expected = np.zeros((8, 8), np.uint8)
    expected[:, :4] = 1
    for i, name in enumerate(d.names):
        assert (d.masks[i, 0].numpy() == expected).all(), name
        assert (d.images[i].int() - 200).abs().max() <= 3, name  # JPEG rounding at most


def test_jpeg_reduced_decoding_is_close_to_a_full_decode(tmp_path):
    """The fast path (DCT-scaled JPEG decode + reducing_gap) against a full decode resized by the
    plain anti-aliased bilinear filter: the same picture within a few grey levels."""
    image, mask = synthetic_case(3, 0, (450, 600))
    Image.fromarray(image).save(tmp_path / "x.jpg", quality=92)
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "x_segmentation.png")
    fast, fast_mask = folder.read_pair(folder.Pair("x", tmp_path / "x.jpg",
                                                   tmp_path / "x_segmentation.png"), 64)  # fmt: skip
    with Image.open(tmp_path / "x.jpg") as im:
        full = np.asarray(im.convert("RGB").resize((64, 64), Image.BILINEAR)).astype(float)
    assert np.abs(fast.astype(float) - full).mean() < 2
    small = np.asarray(Image.fromarray(mask.astype(np.float32)).resize((64, 64))) > 0.5
    assert (fast_mask.astype(bool) != small).mean() < 0.01


def test_ph2_is_still_recognised(synth_tree, cache, tmp_path):
    """The PH2 layout is read as PH2; written by ``synth`` (its marker) it is named synthetic,
    a copy without the marker is named PH2."""
    d = load_dataset(synth_tree, size=16)
    ref = load_ph2(synth_tree, size=16)
    assert d.names == ref.names and torch.equal(d.images, ref.images)
    assert d.source == ref.source == "synthetic PH2-like data"
    copy = tmp_path / "copy"
    shutil.copytree(synth_tree, copy)
    (copy / "PH2 Dataset images" / ".synthetic.json").unlink()
    assert load_dataset(copy, size=16).source == "PH2"


# --- errors ----------------------------------------------------------------------------------


def _case(root: Path, tmp_path: Path, damage) -> Path:
    """A copy of the images/masks layout with ``damage(copy)`` applied; returns the copy."""
    dst = copy(root, tmp_path)
    damage(dst)
    return dst


BAD = {
    "image without mask": (lambda r: (r / "masks" / "case_0003.png").unlink(), "case_0003.png"),
    "mask without image": (lambda r: (r / "images" / "case_0002.png").unlink(), "case_0002.png"),
    "duplicate": (
        lambda r: gray(48, 64).save(r / "images" / "case_0001.jpg"),
        "case_0001.jpg",
    ),
    "duplicate mask": (
        lambda r: half_mask(48, 64).save(r / "masks" / "case_0004_mask.png"),
        "case_0004",
    ),
    "mask is 64x40 but its image": (
        lambda r: half_mask(40, 64).save(r / "masks" / "case_0005.png"),
        "case_0005.png",
    ),
    "unreadable or truncated": (
        lambda r: (r / "images" / "case_0000.png").write_bytes(b"\x89PNG\r\n\x1a\n trunc"),
        "case_0000.png",
    ),
    "empty file": (lambda r: (r / "masks" / "case_0000.png").write_bytes(b""), "case_0000.png"),
    "no masks": (lambda r: shutil.rmtree(r / "masks"), "SyntheticFolders"),
}


@pytest.mark.parametrize("words", list(BAD), ids=list(BAD))
def test_bad_pairing_names_the_file(pairs_root, tmp_path, cache, words):
    damage, name = BAD[words]
    root = _case(pairs_root["folders"], tmp_path, damage)
    with pytest.raises(FolderError) as e:
        load_dataset(root, size=8)
    msg = str(e.value)
    assert words in msg and name in msg, msg
    assert isinstance(e.value, ValueError) and "\n" not in msg


def test_empty_folder(tmp_path, cache):
    (tmp_path / "empty" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("nothing here")
    with pytest.raises(FolderError, match="empty: no images"):
        load_dataset(tmp_path / "empty", size=8)


def test_duplicate_names_both_files(tmp_path):
    (tmp_path / "d").mkdir()
    for f in ("a.jpg", "a.png"):
        gray(8, 8).save(tmp_path / "d" / f)
    half_mask(8, 8).save(tmp_path / "d" / "a_segmentation.png")
    with pytest.raises(FolderError) as e:
        find_pairs(tmp_path / "d")
    assert "a.jpg" in str(e.value) and "a.png" in str(e.value) and "duplicate image" in str(e.value)


LAYOUTS = {
    "images/ + masks/": (("images/a.jpg", "masks/a.png", "images/b.jpg", "masks/b.png"),
                         "images in images/, masks in masks/ named <name>.png"),
    "suffix": (("img/a.jpg", "gt/a_mask.png"), "images in img/, masks in gt/ named <name>_mask.png"),
    "isic, one folder": (("ISIC_1.jpg", "ISIC_1_segmentation.png"),
                         "images and masks in the top folder, masks named "
                         "<name>_segmentation.png"),
    "isic, two folders": (("T1_Input/ISIC_1.jpg", "T1_GroundTruth/ISIC_1_segmentation.png"),
                          "images in T1_Input/, masks in T1_GroundTruth/ named "
                          "<name>_segmentation.png"),
}  # fmt: skip


@pytest.mark.parametrize("layout", list(LAYOUTS), ids=list(LAYOUTS))
def test_layout_in_words(tmp_path, layout):
    files, words = LAYOUTS[layout]
    for f in files:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_bytes(b"")  # pairing reads names only
    assert folder.describe_layout(tmp_path, find_pairs(tmp_path)) == words


def test_partial_pairs_keep_the_order_and_say_what_to_do(tmp_path):
    for f in ("images/a.jpg", "masks/a.png", "images/b.jpg", "masks/c.png", "images/d.jpg"):
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_bytes(b"")
    (tmp_path / "masks" / "d.png").write_bytes(b"")
    with pytest.raises(FolderError, match="b.jpg: image without mask .*; add its mask"):
        find_pairs(tmp_path)
    pairs = find_pairs(tmp_path, partial=True)
    assert [(p.name, p.image is None, p.mask is None) for p in pairs] == [
        ("a", False, False), ("b", False, True), ("c", True, False), ("d", False, False)
    ]  # fmt: skip
    assert [bool(p.problem) for p in pairs] == [False, True, True, False]
    assert "c.png: mask without image (case 'c'); add its image, or remove the mask" in (
        pairs[2].problem
    )


# --- cache and archives ----------------------------------------------------------------------


def test_cache_in_the_cache_folder_with_a_read_only_dataset(
    pairs_root, tmp_path, cache, monkeypatch
):
    root = copy(pairs_root["isic"], tmp_path)
    files = sorted(root.iterdir())
    for f in [*files, root]:
        f.chmod(f.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        first = load_dataset(root, size=16)
        assert sorted(root.iterdir()) == files  # nothing written beside the data
        assert len(list((cache / "tensors").glob("folder-*-16.pt"))) == 1

        def boom(*a, **k):
            raise AssertionError("decoded although cached")

        monkeypatch.setattr(folder, "read_pair", boom)
        again = load_dataset(root, size=16)
        assert again.names == first.names and torch.equal(again.images, first.images)
        assert again.source == first.source
        monkeypatch.undo()
        target = root / "ISIC_0000002_segmentation.png"
        root.chmod(0o755)
        target.chmod(0o644)
        half_mask(48, 64).save(target)  # a changed mask invalidates the cache
        changed = load_dataset(root, size=16)
        assert changed.masks[2, 0, :, :8].all() and not changed.masks[2, 0, :, 8:].any()
    finally:
        root.chmod(0o755)


def test_zip_archive_of_a_folder(pairs_root, tmp_path, cache):
    archive = tmp_path / "MyLesions.zip"
    src = pairs_root["folders"]
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(src.rglob("*.png")):
            zf.write(f, Path("MyLesions") / f.relative_to(src))
    d = load_dataset(archive, size=16)
    ref = load_dataset(src, size=16)
    assert d.source == "MyLesions" and d.names == ref.names and torch.equal(d.masks, ref.masks)
    shutil.rmtree(cache / "extracted")  # cached tensors need no extracted copy
    again = load_dataset(archive, size=16)
    assert again.source == "MyLesions" and torch.equal(again.images, d.images)


# --- split and synthetic layouts -------------------------------------------------------------


@pytest.mark.parametrize(
    "n, fractions, sizes",
    [(10, (0.6, 0.2, 0.2), (6, 2, 2)), (2000, (0.7, 0.15, 0.15), (1400, 300, 300)),
     (7, (0.5, 0.25, 0.25), (3, 2, 2)), (200, None, (100, 50, 50))],
)  # fmt: skip
def test_split_fractions(n, fractions, sizes):
    parts = split_indices(n, seed=3, fractions=fractions)
    assert tuple(len(p) for p in parts) == sizes
    assert sorted(np.concatenate(parts).tolist()) == list(range(n))


@pytest.mark.parametrize("bad", [(0.5, 0.5), (0.5, 0.3, 0.3), (1.2, -0.1, -0.1)])
def test_split_fractions_refused(bad):
    with pytest.raises(ValueError, match="fractions"):
        split_indices(10, fractions=bad)


def test_synthetic_pairs_idempotent_and_careful(tmp_path):
    top = make_synthetic_pairs(tmp_path, n=2, seed=0, layout="isic", shape=SHAPE)
    mtime = (top / "ISIC_0000000.jpg").stat().st_mtime_ns
    assert make_synthetic_pairs(tmp_path, n=2, seed=0, layout="isic", shape=SHAPE) == top
    assert (top / "ISIC_0000000.jpg").stat().st_mtime_ns == mtime
    make_synthetic_pairs(tmp_path, n=3, seed=0, layout="isic", shape=SHAPE)
    assert len(list(top.glob("*_segmentation.png"))) == 3
    theirs = tmp_path / "other" / "SyntheticFolders"
    theirs.mkdir(parents=True)
    with pytest.raises(ValueError, match="not written by"):
        make_synthetic_pairs(tmp_path / "other", n=2, layout="folders")
    with pytest.raises(ValueError, match="unknown layout"):
        make_synthetic_pairs(tmp_path, layout="coco")
    assert os.listdir(theirs) == []
