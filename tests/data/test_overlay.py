"""Overlays on a hand-built image: the expert outline just inside the expert mask, the model's
just outside its mask, each in its own colour with a dark halo, and the legend."""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from seglib.data.overlay import EXPERT_RGB, HALO_RGB, MODEL_RGB, draw_overlay

TEAL = (0, 128, 128)  # a calibration disc: where a cyan tint used to vanish


def _case():
    image = np.zeros((40, 60, 3), np.uint8)
    image[:] = TEAL
    truth = np.zeros((40, 60), bool)
    truth[10:30, 10:30] = True  # rows 10-29, columns 10-29
    pred = np.zeros((40, 60), bool)
    pred[12:28, 36:52] = True  # rows 12-27, columns 36-51
    return image, truth, pred


def test_outlines_colours_and_halo_pixel_by_pixel():
    image, truth, pred = _case()
    out = draw_overlay(image, truth, pred, legend=False, width=2)
    # expert: the top edge of the truth (rows 10, 11 inside), halo on both sides
    assert tuple(out[10, 20]) == tuple(out[11, 20]) == EXPERT_RGB
    assert tuple(out[9, 20]) == tuple(out[12, 20]) == HALO_RGB
    assert tuple(out[8, 20]) == tuple(out[13, 20]) == TEAL
    # model: its left edge, columns 34-35 just outside the prediction, halo at 33 and 36
    assert tuple(out[20, 34]) == tuple(out[20, 35]) == MODEL_RGB
    assert tuple(out[20, 33]) == tuple(out[20, 36]) == HALO_RGB
    assert tuple(out[20, 32]) == tuple(out[20, 37]) == TEAL
    assert EXPERT_RGB != MODEL_RGB and max(HALO_RGB) < 40 and image.dtype == out.dtype


def test_outline_sets_match_city_block_distances():
    """Each band, computed independently: distance (4-neighbour steps) to the other side."""
    image, truth, pred = _case()
    out = draw_overlay(image, truth, pred, legend=False, width=2)
    inside = ndimage.distance_transform_cdt(truth, metric="taxicab")  # steps to the outside
    outside = ndimage.distance_transform_cdt(~pred, metric="taxicab")  # steps into pred
    expert = truth & (inside <= 2)
    model = ~pred & (outside <= 2)
    np.testing.assert_array_equal((out == EXPERT_RGB).all(-1), expert)
    np.testing.assert_array_equal((out == MODEL_RGB).all(-1), model)
    lines = ndimage.distance_transform_cdt(~(expert | model), metric="taxicab")
    np.testing.assert_array_equal((out == HALO_RGB).all(-1), lines == 1)


def test_legend_names_both_colours_in_the_top_left_corner():
    image = np.full((200, 300, 3), 200, np.uint8)  # light skin
    truth = np.zeros((200, 300), bool)
    truth[120:180, 200:280] = True
    pred = np.roll(truth, 5, axis=1)
    plain = draw_overlay(image, truth, pred, legend=False)
    out = draw_overlay(image, truth, pred)
    rows, cols = np.nonzero((out != plain).any(-1))
    assert rows.min() == 0 and cols.min() == 0 and rows.max() < 50 and cols.max() < 120
    box = out[: rows.max() + 1, : cols.max() + 1]
    for rgb in (EXPERT_RGB, MODEL_RGB, HALO_RGB):
        assert (box == rgb).all(-1).sum() >= 10, rgb  # a swatch line and text in each colour
    expert_rows = np.nonzero((box == EXPERT_RGB).all(-1))[0]
    model_rows = np.nonzero((box == MODEL_RGB).all(-1))[0]
    assert expert_rows.mean() < model_rows.mean()  # "expert" above "model"
    Image.fromarray(out)  # a valid RGB image
