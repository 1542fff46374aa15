"""Masks in the formats public archives ship them, read by the truth reader of ``score``
(``read_gray`` + ``truth_of``) and by the dataset loader (``folder.read_pair``): each file holds
the same hand-built lesion, written out below, and both readers must give exactly it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from seglib.data import folder
from seglib.data.imageio import read_gray, truth_of

# the lesion every file below stores, 1 = lesion (a 6x6 mask, an L-shaped region of 9 pixels)
TRUTH = np.array(
    [
        [0, 0, 0, 0, 0, 0],
        [0, 1, 1, 1, 0, 0],
        [0, 1, 1, 1, 0, 0],
        [0, 1, 0, 0, 0, 0],
        [0, 1, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 0],
    ],
    dtype=bool,
)


def _palette(path, indices: np.ndarray, grey_of_index: np.ndarray) -> None:
    """A palette ("P") PNG: pixel values ``indices``, index i drawn as grey ``grey_of_index[i]``."""
    im = Image.fromarray(indices.astype(np.uint8), "P")
    im.putpalette(np.repeat(grey_of_index.astype(np.uint8), 3).tolist())
    im.save(path)


def inverted_palette(path):
    """Index 0 = white, index 255 = black; the lesion stored as index 0 (white: lesion)."""
    _palette(path, np.where(TRUTH, 0, 255), 255 - np.arange(256))


def shuffled_palette(path):
    """Grey levels in a shuffled order: the lesion is the index drawn white, the background
    the index drawn black, neither 0/1 nor 0/255."""
    grey = np.random.default_rng(3).permutation(256)
    white, black = int(np.flatnonzero(grey == 255)[0]), int(np.flatnonzero(grey == 0)[0])
    assert {white, black}.isdisjoint({0, 1, 255})  # a raw-index reader cannot get it right
    _palette(path, np.where(TRUTH, white, black), grey)


def one_bit(path):
    Image.fromarray(TRUTH).convert("1").save(path)


def rgb_0_255(path):
    Image.fromarray(np.repeat(TRUTH[..., None] * np.uint8(255), 3, axis=2), "RGB").save(path)


def sixteen_bit(path):
    """16-bit greyscale PNG (mode I;16), lesion 65535, background 0."""
    Image.fromarray(TRUTH.astype(np.uint16) * 65535).save(path)


FORMATS = [inverted_palette, shuffled_palette, one_bit, rgb_0_255, sixteen_bit]
MODES = {"inverted_palette": "P", "shuffled_palette": "P", "one_bit": "1", "rgb_0_255": "RGB",
         "sixteen_bit": "I;16"}  # fmt: skip


@pytest.fixture(params=FORMATS, ids=[f.__name__ for f in FORMATS])
def mask_file(request, tmp_path):
    path = tmp_path / "case_mask.png"
    request.param(path)
    with Image.open(path) as im:
        assert im.mode == MODES[request.param.__name__]  # the file is what it claims to be
    Image.new("RGB", (6, 6), (180, 120, 90)).save(tmp_path / "case.png")
    return tmp_path / "case.png", path


def test_truth_reader_of_score(mask_file):
    _, mask = mask_file
    np.testing.assert_array_equal(truth_of(read_gray(mask, (6, 6))), TRUTH)


def test_dataset_loader(mask_file):
    image, mask = mask_file
    rgb, got = folder.read_pair(folder.Pair("case", image, mask), 6)
    assert rgb.shape == (6, 6, 3)
    np.testing.assert_array_equal(got, TRUTH.astype(np.uint8))
