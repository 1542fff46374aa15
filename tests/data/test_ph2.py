"""seglib.data.ph2: finding, decoding, resizing, binarising, caching PH2; errors; the split."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import REAL_DATA
from PIL import Image

from seglib.data import fetch, ph2
from seglib.data.fetch import IMAGES_DIR
from seglib.data.ph2 import PH2Data, load_ph2, split_indices
from seglib.data.synth import synthetic_case
from seglib.errors import PH2Error

REAL_ARCHIVE = REAL_DATA / "PH2Dataset.tar.xz"
USER_CACHE = os.environ.get("SEGLIB_CACHE")  # before any fixture changes it


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def write_case(images_dir: Path, name: str, image, mask, ext="bmp", mask_ext="bmp"):
    """One case folder in the official layout; an image or mask is a PIL image (saved in the
    format of ``ext``) or ``bytes`` (written as is)."""
    for sub, stem, content, suffix in [
        (f"{name}_Dermoscopic_Image", name, image, ext),
        (f"{name}_lesion", f"{name}_lesion", mask, mask_ext),
    ]:
        folder = images_dir / name / sub
        folder.mkdir(parents=True)
        if isinstance(content, bytes):
            (folder / f"{stem}.{suffix}").write_bytes(content)
        else:
            content.save(folder / f"{stem}.{suffix}")


def copy_tree(src: Path, tmp_path: Path) -> Path:
    """Copy of a PH2Dataset folder; returns its ``PH2 Dataset images`` folder."""
    dst = tmp_path / "PH2Dataset"
    shutil.copytree(src, dst)
    return dst / IMAGES_DIR


def assert_same(a: PH2Data, b: PH2Data) -> None:
    assert a.names == b.names
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)


# --- loading ---------------------------------------------------------------------------------


def test_every_accepted_root_gives_the_same_data(synth_tree, cache):
    loads = [load_ph2(r, size=16) for r in (synth_tree.parent, synth_tree, synth_tree / IMAGES_DIR)]
    d = loads[0]
    assert isinstance(d, PH2Data) and len(d) == 6
    assert d.names == [f"IMD00{i}" for i in range(1, 7)]
    assert d.images.dtype == torch.uint8 and d.images.shape == (6, 3, 16, 16)
    assert d.masks.dtype == torch.uint8 and d.masks.shape == (6, 1, 16, 16)
    assert set(d.masks.unique().tolist()) == {0, 1}
    for other in loads[1:]:
        assert_same(d, other)


def test_matches_ground_truth_box_downsampled(synth_tree, cache):
    """Against the generator's own arrays, shrunk 4x by plain block averaging."""
    d = load_ph2(synth_tree, size=16)
    for i in range(len(d)):
        image, mask = synthetic_case(1, i, (48, 64))
        box_img = image.reshape(16, 3, 16, 4, 3).mean((1, 3))  # 48x64 -> 16x16
        box_mask = mask.reshape(16, 3, 16, 4).mean((1, 3)) > 0.5
        got = d.images[i].permute(1, 2, 0).numpy().astype(float)
        assert np.abs(got - box_img).mean() < 6
        ours = d.masks[i, 0].numpy().astype(bool)
        assert (ours & box_mask).sum() / (ours | box_mask).sum() > 0.85


def test_mask_modes_and_image_modes(tmp_path, cache):
    """1-bit, L 0/255, L 0/1 and RGB 0/255 masks give the same binary mask; images of any mode
    become RGB with the colour unchanged."""
    lesion = np.zeros((48, 64), bool)
    lesion[:, :32] = True  # left half; 64 -> 8 puts the border between output columns 3 and 4
    colour = np.array([10, 200, 30], np.uint8)
    rgb = Image.fromarray(np.broadcast_to(colour, (48, 64, 3)).copy())
    images = tmp_path / "imgs"
    write_case(images, "IMD001", rgb, Image.fromarray(lesion))  # mode "1"
    write_case(images, "IMD002", rgb, Image.fromarray(lesion.astype(np.uint8) * 255))
    write_case(images, "IMD003", rgb.convert("RGBA"), _png(lesion.astype(np.uint8)), "png", "png")
    write_case(
        images, "IMD004", rgb, Image.fromarray(np.stack([lesion * 255] * 3, -1).astype(np.uint8))
    )
    write_case(images, "IMD005", rgb, Image.fromarray(lesion), ext="jpg")  # JPEG image
    d = load_ph2(images, size=8)
    expected = np.zeros((8, 8), np.uint8)
    expected[:, :4] = 1
    for i in range(5):
        assert (d.masks[i, 0].numpy() == expected).all(), d.names[i]
    assert (d.images[:4] == torch.tensor(colour)[:, None, None]).all()
    assert (d.images[4].float() - torch.tensor(colour)[:, None, None]).abs().max() <= 6  # JPEG


def test_images_of_varying_size_and_an_empty_mask(tmp_path, cache):
    images = tmp_path / "imgs"
    for name, (h, w) in {"IMD010": (560, 764), "IMD002": (576, 768)}.items():
        gray = np.full((h, w, 3), 120, np.uint8)
        write_case(images, name, Image.fromarray(gray), Image.fromarray(np.zeros((h, w), bool)))
    d = load_ph2(images, size=32)
    assert d.names == ["IMD002", "IMD010"]  # sorted by name
    assert d.images.shape == (2, 3, 32, 32) and (d.images == 120).all()
    assert d.masks.sum() == 0  # all background is valid data


def test_roi_folders_and_stray_files_are_ignored(synth_tree, tmp_path, cache):
    images = copy_tree(synth_tree, tmp_path)
    for stray in (".DS_Store", "notes.txt", "Thumbs.db", "IMD001/desktop.ini"):
        (images / stray).write_bytes(b"junk")
    (images / "misc").mkdir()
    (images / "IMDx").mkdir()  # not IMD + digits
    roi = images / "IMD001" / "IMD001_roi"
    roi.mkdir()
    Image.fromarray(np.ones((48, 64), bool)).save(roi / "IMD001_R1_Label1.bmp")
    assert_same(load_ph2(images, size=16, cache=False), load_ph2(synth_tree, size=16, cache=False))


# --- archives and caches ---------------------------------------------------------------------


def make_archive(tree: Path, path: Path) -> Path:
    """Archive the folder ``tree`` under its own name; the format follows the file name."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as zf:
            for f in sorted(tree.rglob("*")):
                zf.write(f, f.relative_to(tree.parent).as_posix())
    else:
        mode = {".tar": "w", ".gz": "w:gz", ".tgz": "w:gz", ".xz": "w:xz", ".bz2": "w:bz2"}
        with tarfile.open(path, mode[path.suffix]) as tf:
            tf.add(tree, tree.name)
    return path


@pytest.mark.parametrize(
    "name", ["ph2.zip", "ph2.tar", "ph2.tar.gz", "ph2.tgz", "ph2.tar.xz", "ph2.tar.bz2"]
)
def test_archive_is_extracted_once_into_the_cache(synth_tree, tmp_path, cache, monkeypatch, name):
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    archive = make_archive(synth_tree, shelf / name)
    d = load_ph2(archive, size=16, cache=False)
    assert_same(d, load_ph2(synth_tree, size=16, cache=False))
    assert sorted(os.listdir(shelf)) == [name]  # nothing written beside the archive
    assert len(list((cache / "extracted").iterdir())) == 1

    def no_extraction(*a):
        raise AssertionError("extracted twice")

    monkeypatch.setattr(fetch, "extract_archive", no_extraction)
    assert_same(load_ph2(archive, size=16, cache=False), d)


def test_interrupted_extraction_is_not_taken_as_complete(synth_tree, tmp_path, cache, monkeypatch):
    archive = make_archive(synth_tree, tmp_path / "ph2.tar")
    real = fetch.extract_archive

    def extract_then_die(archive, dest):
        real(archive, dest)
        raise KeyboardInterrupt

    monkeypatch.setattr(fetch, "extract_archive", extract_then_die)
    with pytest.raises(KeyboardInterrupt):
        load_ph2(archive, size=16)
    assert not list((cache / "extracted").iterdir())  # temporary folder removed, none final
    monkeypatch.setattr(fetch, "extract_archive", real)
    assert len(load_ph2(archive, size=16)) == 6


def test_tensor_cache_is_used_and_invalidated(synth_tree, tmp_path, cache, monkeypatch):
    images = copy_tree(synth_tree, tmp_path)
    first = load_ph2(images, size=16)
    assert len(list((cache / "tensors").glob("*.pt"))) == 1

    def no_decoding(*a):
        raise AssertionError("decoded again")

    with monkeypatch.context() as m:
        m.setattr(ph2, "read_square", no_decoding)
        assert_same(load_ph2(images, size=16), first)
    assert load_ph2(images, size=8).images.shape[-1] == 8  # another size, another entry
    mask_file = images / "IMD003" / "IMD003_lesion" / "IMD003_lesion.bmp"
    Image.fromarray(np.zeros((48, 64), bool)).save(mask_file)
    changed = load_ph2(images, size=16)
    assert first.masks[2].sum() > 0 and changed.masks[2].sum() == 0
    assert torch.equal(changed.masks[3:], first.masks[3:])


def test_cached_archive_load_needs_no_extracted_folder(synth_tree, tmp_path, cache):
    archive = make_archive(synth_tree, tmp_path / "ph2.zip")
    first = load_ph2(archive, size=16)
    shutil.rmtree(cache / "extracted")
    assert_same(load_ph2(archive, size=16), first)


# --- bad input -------------------------------------------------------------------------------


def _rm_image(images: Path) -> Path:
    shutil.rmtree(images / "IMD002" / "IMD002_Dermoscopic_Image")
    return images / "IMD002"


def _rm_mask(images: Path) -> Path:
    (images / "IMD004" / "IMD004_lesion" / "IMD004_lesion.bmp").unlink()
    return images / "IMD004"


def _empty_image(images: Path) -> Path:
    path = images / "IMD001" / "IMD001_Dermoscopic_Image" / "IMD001.bmp"
    path.write_bytes(b"")
    return path


def _truncated_image(images: Path) -> Path:
    path = images / "IMD005" / "IMD005_Dermoscopic_Image" / "IMD005.bmp"
    path.write_bytes(path.read_bytes()[:3000])
    return path


def _not_an_image(images: Path) -> Path:
    path = images / "IMD006" / "IMD006_lesion" / "IMD006_lesion.bmp"
    path.write_text("this is not a bitmap")
    return path


@pytest.mark.parametrize(
    "damage, words",
    [
        (_rm_image, "no dermoscopic image"),
        (_rm_mask, "no lesion mask"),
        (_empty_image, "empty file"),
        (_truncated_image, "truncated"),
        (_not_an_image, "unreadable"),
    ],
)
def test_bad_case_names_the_path(synth_tree, tmp_path, cache, damage, words):
    images = copy_tree(synth_tree, tmp_path)
    culprit = damage(images)
    with pytest.raises(PH2Error, match=words) as err:
        load_ph2(images, size=16)
    assert str(culprit) in str(err.value)


def test_missing_root(tmp_path, cache):
    with pytest.raises(PH2Error, match="not found") as err:
        load_ph2(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value)


def test_folder_without_cases(tmp_path, cache):
    (tmp_path / "IMD_notes").mkdir()
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(PH2Error, match="no PH2 case folders") as err:
        load_ph2(tmp_path)
    assert str(tmp_path) in str(err.value)
    (tmp_path / IMAGES_DIR).mkdir()  # the official folder, but empty
    with pytest.raises(PH2Error, match="no PH2 case folders"):
        load_ph2(tmp_path)


@pytest.mark.parametrize("name", ["ph2.zip", "ph2.tar.gz", "ph2.tar.xz"])
def test_corrupt_archive_names_the_archive(synth_tree, tmp_path, cache, name):
    archive = make_archive(synth_tree, tmp_path / name)
    blob = archive.read_bytes()
    archive.write_bytes(blob[: len(blob) // 2])  # truncated, as by an interrupted copy
    with pytest.raises(PH2Error, match="archive") as err:
        load_ph2(archive, size=16)
    assert str(archive) in str(err.value)
    garbage = tmp_path / "garbage.rar"
    garbage.write_bytes(os.urandom(1000))
    with pytest.raises(PH2Error, match="not a RAR, ZIP or TAR") as err:
        load_ph2(garbage, size=16)
    assert str(garbage) in str(err.value)


# --- split -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, sizes",
    [(200, (100, 50, 50)), (10, (6, 2, 2)), (7, (5, 1, 1)), (1, (1, 0, 0)), (0, (0, 0, 0))],
)
def test_split_sizes_and_cover(n, sizes):
    parts = split_indices(n)
    assert tuple(len(p) for p in parts) == sizes
    joined = np.concatenate(parts)
    assert np.array_equal(np.sort(joined), np.arange(n))  # disjoint and covering
    assert all(p.dtype.kind == "i" for p in parts)


def test_split_is_a_seeded_permutation():
    train, val, test = split_indices(200, seed=3)
    perm = np.random.default_rng(3).permutation(200)
    assert set(train) == set(perm[:100]) and set(val) == set(perm[100:150])
    assert set(test) == set(perm[150:])
    assert all(np.array_equal(a, b) for a, b in zip(split_indices(200, 3), (train, val, test)))
    assert not np.array_equal(split_indices(200, seed=4)[0], train)


# --- the real data ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not REAL_ARCHIVE.is_file(), reason=f"real PH2 archive not at {REAL_ARCHIVE}")
def test_real_archive(monkeypatch):
    """The real PH2 (first run extracts ~160 MB of tar.xz into the user cache: ~15-40 s)."""
    if USER_CACHE:
        monkeypatch.setenv("SEGLIB_CACHE", USER_CACHE)
    d = load_ph2(REAL_ARCHIVE, size=64)
    assert len(d) == 200 and d.names[0] == "IMD002" and d.names[-1] == "IMD437"
    assert d.names == sorted(d.names) and len(set(d.names)) == 200
    assert d.images.dtype == torch.uint8 and d.images.shape == (200, 3, 64, 64)
    assert d.masks.dtype == torch.uint8 and d.masks.shape == (200, 1, 64, 64)
    assert set(d.masks.unique().tolist()) == {0, 1}
    fraction = d.masks.float().mean((1, 2, 3))
    assert fraction.min() >= 0.02 and fraction.max() <= 0.99
    assert d.images.float().std() > 20  # real pictures, not blank

    # independent decoding with scikit-image of a few cases (IMD002's mask is RGB 0/255)
    from skimage import io as skio
    from skimage.transform import resize

    images_dir = fetch.find_images_dir(fetch.extract_cached(REAL_ARCHIVE))
    for i in (0, 1, 199):
        case = images_dir / d.names[i]
        image = skio.imread(case / f"{case.name}_Dermoscopic_Image" / f"{case.name}.bmp")
        mask = skio.imread(case / f"{case.name}_lesion" / f"{case.name}_lesion.bmp")
        mask = (mask if mask.ndim == 2 else mask[..., 0]) > 0
        want = resize(mask.astype(float), (64, 64), anti_aliasing=True) > 0.5
        ours = d.masks[i, 0].numpy().astype(bool)
        assert (ours & want).sum() / (ours | want).sum() > 0.97
        want_image = resize(image, (64, 64), anti_aliasing=True, preserve_range=True)
        assert np.abs(d.images[i].permute(1, 2, 0).numpy() - want_image).mean() < 3
