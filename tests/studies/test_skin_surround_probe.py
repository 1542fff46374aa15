"""studies/skin_surround_probe.py: the quilted surround is made of the photo's lesion-free
skin only, and the zoom-out keeps its scale and place whatever the surround."""

import numpy as np
from helpers import rng, scene

from seglib.robustness import artefacts
from studies import skin_surround_probe as probe


def photo(h=400, w=500):
    """Textured skin (values vary with position), a dark lesion, black field-border corners."""
    image, mask = scene(h, w, (150, 250, 200, 320))
    yy, xx = np.mgrid[:h, :w]
    image[np.hypot((yy - h / 2) / h, (xx - w / 2) / w) > 0.6] = 0  # the corners
    return image, mask


def test_quilt_holds_skin_colours_only():
    image, mask = photo()
    out = probe.quilt(image, mask, (300, 420), 0.25, rng(1), tile=48)
    skin = image[probe.skin_mask(image, mask)]
    assert out.shape == (300, 420, 3)
    lo, hi = skin.min(0), skin.max(0)  # (180, 140, 120) and (186, 150, 124) by construction
    assert np.all(out >= lo - 1e-3) and np.all(out <= hi + 1e-3)  # no lesion (70, 45, 30), no black


def test_skin_surround_has_the_colour_of_the_skin_near_the_lesion_and_the_far_texture():
    image = np.zeros((400, 500, 3), np.uint8)
    image[:] = (200, 150, 130)  # skin within 0.1 * 400 = 40 px of the lesion: one colour
    stripe = (np.arange(400) // 8 % 2).astype(bool)  # elsewhere grey stripes 8 px wide, mean 130
    image[stripe], image[~stripe] = 100, 160
    mask = np.zeros((400, 500), bool)
    mask[150:250, 200:300] = True
    image[110:290, 160:340] = (200, 150, 130)
    image[mask] = (70, 45, 30)
    out = probe.skin_surround(image, mask, (300, 420), 0.5, rng(2), tile=48)
    assert np.allclose(out.mean((0, 1)), (200, 150, 130), atol=0.01)
    assert out.std((0, 1)).min() > 5  # the stripes' texture, shrunk and blended, remains


def test_skin_mask_leaves_out_the_lesion_its_halo_and_the_dark_border():
    image, mask = photo()
    skin = probe.skin_mask(image, mask, margin=0.03)  # 0.03 * 400 = 12 px
    assert not skin[mask].any() and not skin[image.sum(-1) == 0].any()
    assert not skin[150 - 12, 250].any() and skin[150 - 14, 250]  # 12 px halo above the lesion


def test_no_tile_falls_back():
    image, mask = scene(60, 80, (5, 55, 5, 75))  # the lesion leaves no 48 px of skin
    calls = []

    def smooth(*a):
        calls.append(a[2])
        return np.zeros((*a[2], 3))

    out = probe.quilt(image, mask, (60, 80), 0.5, rng(), tile=48, fallback=smooth)
    assert calls == [(60, 80)] and out.shape == (60, 80, 3) and not probe.has_tile(image, mask, 48)


def test_zoom_out_scale_and_place_do_not_depend_on_the_surround():
    image, mask = photo()
    seen = []

    def flat(image, mask, shape, scale, rng):
        seen.append(scale)
        return np.full((*shape, 3), 200.0)

    _, a = artefacts.small_lesion(image, mask, rng(7))
    _, b = artefacts.small_lesion(image, mask, rng(7), surround=flat)
    assert np.array_equal(a, b) and 0.005 <= b.mean() <= 0.03
    assert 0.008 <= seen[0] ** 2 * mask.mean() <= 0.025  # the lesion's target fraction


def test_patchwork_keeps_each_tiles_brightness_and_skin_does_not():
    image, mask = photo()
    image[:, :250] = image[:, :250] // 2  # the left half of the skin in shadow
    image[mask] = (70, 45, 30)
    skin = probe.skin_surround(image, mask, (300, 420), 0.5, rng(4), tile=48)
    patch = probe.patchwork_surround(image, mask, (300, 420), 0.5, rng(4))
    assert np.allclose(patch.mean((0, 1)), skin.mean((0, 1)), atol=0.05)  # the same colour
    assert patch.std((0, 1)).min() > 20  # bright and dark tiles side by side
    assert skin.std((0, 1)).max() < 10  # the scene's own texture only (values vary by <= 11)
