"""Artefact generators on tiny hand-made images: each does what its docstring says,
moves the mask exactly with the image where it is geometric, and leaves it alone otherwise."""

import io

import numpy as np
import pytest
from helpers import rng, scene
from PIL import Image, ImageFilter

from seglib.robustness import artefacts, drawn


def test_registry_is_honestly_split():
    assert set(artefacts.TRAINED_KINDS) < set(artefacts.KINDS)
    assert 3 * len(artefacts.HELD_OUT_KINDS) >= len(artefacts.KINDS)
    assert set(artefacts.HELD_OUT_KINDS) == set(artefacts.KINDS) - set(artefacts.TRAINED_KINDS)
    with pytest.raises(ValueError, match="unknown artefact"):
        artefacts.apply("smudge", *scene(), rng())


@pytest.mark.parametrize("kind", list(artefacts.KINDS))
def test_every_kind_is_deterministic_and_well_formed(kind):
    image, mask = scene()
    a = artefacts.apply(kind, image, mask, rng(3))
    b = artefacts.apply(kind, image, mask, rng(3))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert a[0].dtype == np.uint8 and a[0].ndim == 3 and a[0].shape[:2] == a[1].shape
    assert a[1].dtype == bool
    assert not np.array_equal(a[0], image) or a[0].shape != image.shape
    if kind not in ("small_lesion", "crop_3_2", "crop_1_1", "rot90"):
        assert np.array_equal(a[1], mask)  # non-geometric kinds never change the mask


@pytest.mark.parametrize("seed", range(5))
def test_small_lesion_lands_in_the_range(seed):
    image, mask = scene(120, 160, (30, 90, 40, 120))  # 25% of the frame
    out, m = artefacts.small_lesion(image, mask, rng(seed))
    assert out.shape == image.shape
    assert 0.005 <= m.mean() <= 0.03
    assert out[m].mean() < 110  # the dark lesion pixels are where the mask says
    assert out[~m].mean() > 140


@pytest.mark.parametrize("seed", range(3))
def test_small_lesion_cut_by_the_frame_stays_in_the_range(seed):
    image, mask = scene(120, 160, (0, 120, 0, 160))  # the lesion fills the frame
    _, m = artefacts.small_lesion(image, mask, rng(seed))
    assert 0.005 <= m.mean() <= 0.03


def test_small_lesion_leaves_small_lesions():
    image, mask = scene(100, 100, (10, 12, 10, 12))  # 0.04%
    out, m = artefacts.small_lesion(image, mask, rng())
    assert out is image and m is mask


def test_disc_occupies_the_pixels_within_its_radius():
    image = np.full((20, 30, 3), 100, np.uint8)
    out, foot = drawn.paste_disc(image, (5.0, 10.0), 4.0, (245, 215, 40), rng())
    yy, xx = np.mgrid[:20, :30]
    expect = (yy - 5) ** 2 + (xx - 10) ** 2 <= 16
    assert np.array_equal(foot, expect)
    assert np.array_equal((out != image).any(-1), expect)
    assert (out[expect][:, 0] > out[expect][:, 2]).all()  # yellow: red well above blue


@pytest.mark.parametrize("seed", range(5))
def test_discs_stay_off_the_lesion_and_reach_the_edge(seed):
    image, mask = scene(120, 160, (40, 80, 50, 110))
    out, m = artefacts.calibration_discs(image, mask, rng(seed))
    assert np.array_equal(m, mask)
    changed = (out != image).any(-1)
    assert changed.any() and not (changed & mask).any()
    border = np.concatenate([changed[0], changed[-1], changed[:, 0], changed[:, -1]])
    assert border.any()


def test_ruler_ticks_are_evenly_spaced():
    image = np.full((40, 120, 3), 230, np.uint8)
    out = drawn.draw_ruler(image, row=5, start=10, length=100, spacing=4)
    dark = (out < 100).all(-1)

    def starts(row):
        cols = np.flatnonzero(dark[row])
        return cols[np.r_[True, np.diff(cols) > 1]]

    assert np.array_equal(np.diff(starts(8)), np.full(25, 4))  # 26 ticks, 4 px apart
    assert np.array_equal(np.diff(starts(12)), np.full(5, 20))  # every 5th tick is longer
    assert not dark[5 + 3 * 4 + 2 :].any()  # nothing below the longest tick


def test_ink_surrounds_the_lesion_without_touching_it():
    image, mask = scene(200, 200, (80, 120, 70, 130))
    out, m = artefacts.ink_marks(image, mask, rng(1))
    ink = (out != image).any(-1)
    assert np.array_equal(m, mask) and not (ink & mask).any()
    for part in (ink[:80], ink[120:], ink[:, :70], ink[:, 130:]):
        assert part.any()  # above, below, left and right of the lesion


def test_hair_is_dark_and_leaves_the_mask():
    image, mask = scene()
    out, m = artefacts.dense_hair(image, mask, rng())
    hair = (out != image).any(-1) & ~mask
    assert np.array_equal(m, mask) and hair.mean() > 0.05
    assert out[hair].max() <= 70


def test_fov_border_darkens_corners_and_spares_the_lesion():
    image, mask = scene()
    out, m = artefacts.fov_border(image, mask, rng())
    assert np.array_equal(m, mask)
    assert np.array_equal(out[mask], image[mask])
    assert out[0, 0].max() < 40 and out[-1, -1].max() < 40


def test_vignetting_follows_its_formula():
    image = np.full((21, 31, 3), 200, np.uint8)
    out, _ = artefacts.vignetting(image, np.zeros((21, 31), bool), rng(), 0.5, 2.0)
    assert (out[10, 15] == 200).all()  # the centre: r = 0
    assert (out[0, 0] == 100).all()  # a corner: r = 1, 200 * (1 - 0.5)


def test_colour_cast_exposure_scale_and_clip():
    image, mask = scene()
    out, _ = artefacts.colour_cast(image, mask, rng(), gains=(1.2, 1.0, 0.8))
    expect = np.clip(np.rint(image * np.array([1.2, 1.0, 0.8])), 0, 255)
    assert np.array_equal(out, expect)
    assert out[0, 0, 0] == min(255, round(image[0, 0, 0] * 1.2))
    out, _ = artefacts.exposure(image, mask, rng(), gain=1.5)
    assert out[0, 0, 0] == 255 and out[mask][0, 0] == 105  # 180 saturates; 70 * 1.5 = 105
    gains = [artefacts.colour_cast(image, mask, rng(s))[0] for s in range(5)]
    assert all(not np.array_equal(g, image) for g in gains)


def test_blur_and_jpeg_equal_pillow():
    image, mask = scene()
    out, _ = artefacts.blur(image, mask, rng(), radius=3.0)
    ref = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(3.0)))
    assert np.array_equal(out, ref)
    out, _ = artefacts.jpeg(image, mask, rng(), quality=20)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=20)
    assert np.array_equal(out, np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))


@pytest.mark.parametrize("fn, aspect", [(artefacts.crop_3_2, 1.5), (artefacts.crop_1_1, 1.0)])
@pytest.mark.parametrize("seed", range(3))
def test_crops_keep_the_aspect_and_the_lesion(fn, aspect, seed):
    image, mask = scene(60, 100, (20, 35, 60, 80))
    out, m = fn(image, mask, rng(seed))
    h, w = m.shape
    assert abs(w / h - aspect) < 0.03 and (h == 60 or w == 100)
    assert m.sum() == mask.sum()  # the whole lesion is kept
    # image and mask are the same window: find it in the position-coded image
    for top in range(61 - h):
        for left in range(101 - w):
            if np.array_equal(image[top : top + h, left : left + w], out):
                assert np.array_equal(mask[top : top + h, left : left + w], m)
                return
    pytest.fail("the crop is not a window of the image")


def test_rotation_turns_image_and_mask_alike():
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    mask = np.array([[1, 0, 0], [0, 0, 1]], bool)
    out, m = artefacts.rot90(image, mask, rng(), k=1)  # counter-clockwise
    assert np.array_equal(m, [[0, 1], [0, 0], [1, 0]])
    assert np.array_equal(out[:, :, 0], [[6, 15], [3, 12], [0, 9]])
    drawn = {int(artefacts.rot90(image, mask, rng(s))[1].shape[0]) for s in range(10)}
    assert drawn == {2, 3}  # k = 2 keeps the shape, 1 and 3 swap it


def test_feather_is_a_smoothstep_over_the_given_share_at_both_ends():
    """feather(4, 0.5): pixel centres 0.5..3.5, distance to the nearer end over 2 px = 1/4, 3/4,
    3/4, 1/4; smoothstep 3t^2 - 2t^3 = 5/32, 27/32, 27/32, 5/32. Wide inputs reach 1 inside."""
    np.testing.assert_allclose(artefacts.feather(4, 0.5), [5 / 32, 27 / 32, 27 / 32, 5 / 32])
    w = artefacts.feather(100, 0.1)
    assert w[10:90].min() == 1.0 and w[0] < 0.01 and np.all(np.diff(w[:50]) >= 0)
