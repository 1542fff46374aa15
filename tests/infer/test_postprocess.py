"""Inference pipelines (seglib.infer.postprocess, predict_mask's robust path): hand-worked geometry and a
stand-in net whose answer is known ("dark pixels are lesion"), so every expected mask is drawn
analytically, not taken from seglib."""

import dataclasses

import numpy as np
import pytest
import torch

from seglib.infer import postprocess as P
from seglib.infer.predict import predict_mask


def test_input_size_rounds_to_multiples_of_16_and_keeps_the_training_size_at_scale_1():
    assert P.input_size(192, 1.5) == 288
    assert P.input_size(100, 1.5) == 144  # 150 -> 9.375 sixteens -> 9
    assert P.input_size(40, 1.0) == 40
    assert P.input_size(8, 0.5) == 16


def test_exposure_gain_by_hand():
    img = np.full((4, 4, 3), 100, np.uint8)  # luma 100 (the weights sum to 1)
    assert P.exposure_gain(img, 150) == pytest.approx(1.5, rel=1e-6)
    assert P.exposure_gain(img, 150, band=1.3) == pytest.approx(150 / 1.3 / 100, rel=1e-6)
    assert P.exposure_gain(img, 120, band=1.3) == 1.0  # 100 is inside [92.3, 156]
    assert P.exposure_gain(img, 400) == 2.0  # clipped
    assert P.exposure_gain(img, 10) == 0.5
    # the median, not the mean: a dark lesion on 60% of the pixels does not count
    img[:2, :, :] = 0
    img[2, :2, :] = 0
    assert P.exposure_gain(img, 100, black=-1) == 2.0  # median of 10x0, 6x100 is 0: clipped
    # ... but pixels at or below `black` are outside the field of view: the median is 100
    assert P.exposure_gain(img, 100) == 1.0
    assert P.exposure_gain(np.zeros((4, 4, 3), np.uint8), 100) == 2.0  # all black: all count


def test_apply_gain_rounds_and_clips():
    img = np.array([[[10, 100, 200]]], np.uint8)
    assert P.apply_gain(img, 1.5).tolist() == [[[15, 150, 255]]]
    assert P.apply_gain(img, 1.0) is img


def test_largest_component_is_8_connected():
    m = np.zeros((6, 8), bool)
    m[0, 0] = m[1, 1] = m[2, 2] = True  # one diagonal component of 3
    m[4:6, 5:7] = True  # a 2x2 square: 4 pixels
    out = P.largest_component(m)
    assert out.sum() == 4 and out[4:6, 5:7].all()
    m[3, 3] = m[2, 3] = True  # the diagonal now has 5 and touches nothing else
    assert P.largest_component(m).sum() == 5
    assert not P.largest_component(np.zeros((3, 3), bool)).any()


def test_largest_component_by_weight_and_the_centre_prior_by_hand():
    m = np.zeros((4, 6), bool)
    m[0, 0:3] = True  # 3 pixels
    m[3, 4:6] = True  # 2 pixels
    w = np.ones((4, 6))
    w[3, 4:6] = 2.0  # weight 4 against 3: the smaller component wins
    assert P.largest_component(m).sum() == 3
    out = P.largest_component(m, w)
    assert out.sum() == 2 and out[3, 4:6].all()
    logits = np.zeros((2, 4))  # probability 1/2 everywhere
    # pixel centres at y = -1/2, 1/2 and x = -3/4, -1/4, 1/4, 3/4: 1 - y^2 - x^2
    want = 0.5 * np.array([[1 - 0.25 - 0.5625, 1 - 0.25 - 0.0625, 1 - 0.25 - 0.0625,
                            1 - 0.25 - 0.5625]] * 2)  # fmt: skip
    assert np.allclose(P.component_weight(logits, "centre"), want)
    assert np.allclose(P.component_weight(logits, "margin"), 0)  # 2p - 1 = 0 at p = 1/2
    sure = logits.copy()
    sure[0, 1] = np.log(3)  # p = 3/4: margin 1/2, prior 1 - 1/4 - 1/16
    assert np.isclose(P.component_weight(sure, "margin")[0, 1], 0.5 * 0.6875)
    assert np.isclose(P.component_weight(-sure, "margin")[0, 1], 0)  # p = 1/4: clipped
    assert np.allclose(P.component_weight(logits, "mass"), 0.5)
    assert P.component_weight(logits, "area") is None
    with pytest.raises(ValueError, match="unknown component rule 'big'"):
        P.component_weight(logits, "big")


def test_margin_rule_drops_a_flat_central_plateau_for_a_confident_edge_lesion():
    """A large central region at probability 0.52 (the width-24 net's false blob on small
    lesions) and a small confident lesion near the edge at 0.99: centre keeps the plateau,
    margin the lesion. Hand-worked: on an 8 x 8 frame the plateau is the 2 x 2 middle (prior
    1 - 2 * (1/8)^2 = 0.969 each; centre 4 * 0.52 * 0.969 = 2.02, margin 4 * 0.04 * 0.969 =
    0.155), the lesion the single pixel (1, 1) (prior 1 - 2 * (5/8)^2 = 0.219; centre 0.217,
    margin 0.98 * 0.219 = 0.214)."""
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    logits = np.full((8, 8), -5.0)
    logits[3:5, 3:5] = logit(0.52)
    logits[1, 1] = logit(0.99)
    mask = logits > 0
    centre = P.largest_component(mask, P.component_weight(logits, "centre"))
    margin = P.largest_component(mask, P.component_weight(logits, "margin"))
    assert centre[3:5, 3:5].all() and centre.sum() == 4
    assert margin[1, 1] and margin.sum() == 1


def test_component_probe_lists_regions_in_the_rules_order_by_hand():
    """The hand-worked frame above: the probe ranks the plateau first by centre (2.02 vs 0.217)
    and the lesion first by margin (0.214 vs 0.155), with each region's share of the frame,
    of the true lesion (here the single pixel) and its probabilities."""
    from studies import component_probe as mod

    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    logits = np.full((8, 8), -5.0)
    logits[3:5, 3:5] = logit(0.52)
    logits[1, 1] = logit(0.99)
    truth = np.zeros((8, 8), bool)
    truth[1, 1] = True
    plateau = {"frame": 4 / 64, "covers_lesion": 0.0, "mean_p": 0.52, "max_p": 0.52}
    lesion = {"frame": 1 / 64, "covers_lesion": 1.0, "mean_p": 0.99, "max_p": 0.99}
    for rule, first, weights in (("centre", plateau, (2.0150, 0.2166)),
                                 ("margin", lesion, (0.2144, 0.1550))):  # fmt: skip
        out = mod.regions(logits, truth, rule)
        assert len(out) == 2 and [r["weight"] for r in out] == pytest.approx(weights, abs=1e-3)
        assert {k: out[0][k] for k in first} == pytest.approx(first)


def test_seed_region_takes_the_mask_or_the_likeliest_region():
    logits = np.full((5, 5), -5.0)
    logits[1, 1], logits[1, 2] = -1.0, -2.0  # sigmoid 0.27, 0.12: one region above 0.1
    logits[4, 4] = -1.5  # another region above 0.1, lower maximum
    mask = np.zeros((5, 5), bool)
    region = P.seed_region(logits, mask, 0.1)
    assert region.sum() == 2 and region[1, 1] and region[1, 2]
    assert P.seed_region(logits, mask, 0.5) is None
    mask[3, 3] = True
    assert P.seed_region(logits, mask, 0.1) is mask


def test_zoom_window_by_hand():
    region = np.zeros((100, 200), bool)
    region[40:50, 90:110] = True  # box 10 x 20: a tenth of each side
    # z = 2 * 0.1 = 0.2: a 20 x 40 window centred on the box (45, 100)
    assert P.zoom_window(region, 2.0, 0.8, 0.15) == (35, 80, 20, 40)
    assert P.zoom_window(region, 8.0, 0.8, 0.15) is None  # 0.8 of the frame: no zoom
    assert P.zoom_window(region, 1.0, 0.8, 0.15) == (38, 85, 15, 30)  # at least 0.15
    corner = np.zeros((100, 200), bool)
    corner[0:10, 190:200] = True  # shifted into the frame
    assert P.zoom_window(corner, 2.0, 0.8, 0.15) == (0, 160, 20, 40)


def test_resolve_names():
    assert P.resolve(None, {}) == P.PIPELINES["plain"]
    assert P.resolve("auto", {"pipeline": "robust"}) == P.PIPELINES["robust"]
    assert P.resolve("plain", {"pipeline": "robust"}) == P.PIPELINES["plain"]
    with pytest.raises(ValueError, match="unknown pipeline 'fancy'"):
        P.resolve("fancy", {})


def test_cli_offers_exactly_the_pipelines_and_precisions():
    """The parser keeps its own copies of the names (so --help imports neither scipy nor
    torch); they must list what seglib.infer.postprocess and seglib.runtime accept."""
    from seglib.cli import options as cli
    from seglib.runtime import PRECISIONS

    assert set(cli.PIPELINE_CHOICES) == {"auto", *P.PIPELINES}
    assert cli.PRECISIONS == PRECISIONS


class DarkIsLesion(torch.nn.Module):
    """Stand-in net: logit 20 * (0.3 - brightness), brightness the channel mean in [0, 1]
    (the norm below is mean 0, std 1): pixels darker than 0.3 are lesion."""

    def forward(self, x):
        return 20 * (0.3 - x.mean(1, keepdim=True))


NORM = torch.tensor([0.0, 1.0]).view(2, 1, 1, 1, 1).expand(2, 1, 3, 1, 1)


def disc(shape, centre, radius):
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def photo(lesions, shape=(560, 768), skin=200, dark=20):
    img = np.full((*shape, 3), skin, np.uint8)
    for m in lesions:
        img[m] = dark
    return img


def test_zoom_refinement_segments_a_small_lesion_the_coarse_pass_blurs():
    truth = disc((560, 768), (400, 150), 21)  # 0.32% of the frame, 3 px across at 32 px
    img = photo([truth])
    cfg, norm = {"size": 32}, skin_norm()
    net = NormAware(norm)
    plain = predict_mask(net, cfg, norm, img, tta=False, pipeline="plain")
    robust = predict_mask(net, cfg, norm, img, tta=False, pipeline="robust")
    assert robust.shape == truth.shape
    assert iou(robust, truth) > 0.9
    assert iou(robust, truth) > iou(plain, truth) + 0.1


def test_robust_keeps_the_largest_region_and_normalises_exposure():
    lesion, sticker = disc((560, 768), (280, 380), 120), disc((560, 768), (60, 60), 40)
    img = photo([lesion, sticker])
    no_zoom = dataclasses.replace(P.PIPELINES["robust"], zoom=0.0, scales=(1.0,))
    norm = skin_norm()
    net = NormAware(norm)
    out = predict_mask(net, {"size": 64}, norm, img, tta=False, pipeline=no_zoom)
    assert not out[sticker].any() and iou(out, lesion) > 0.9
    dim = (img * 0.3).astype(np.uint8)  # under-exposed: skin 60, darker than 0.3 x 255
    plain = predict_mask(net, {"size": 64}, norm, dim, tta=False, pipeline="plain")
    assert plain.mean() > 0.9  # everything looks like lesion
    fixed = predict_mask(net, {"size": 64}, norm, dim, tta=False, pipeline=no_zoom)
    assert iou(fixed, lesion) > 0.9


def test_centre_and_margin_rules_keep_the_centred_lesion_over_a_larger_dark_corner():
    lesion, corner = disc((560, 768), (280, 384), 70), disc((560, 768), (0, 0), 170)
    img = photo([lesion, corner])
    norm = skin_norm()
    net, cfg = NormAware(norm), {"size": 64}
    shipped = dataclasses.replace(P.PIPELINES["robust"], zoom=0.0, scales=(1.0,))
    assert (
        shipped.component == "margin"
    )  # the shipped rule (chosen on val, docs/explanation/robustness.md)
    area = dataclasses.replace(shipped, component="area")
    area = predict_mask(net, cfg, norm, img, tta=False, pipeline=area)
    assert corner.sum() > lesion.sum() and iou(area, corner) > 0.8  # the corner is larger
    for rule in ("centre", "margin"):
        p = dataclasses.replace(shipped, component=rule)
        for out_size in (None, (280, 384)):  # at the photo's size, and reduced (weights resized)
            out = predict_mask(net, cfg, norm, img, tta=False, pipeline=p, out_size=out_size)
            want = lesion if out_size is None else lesion[::2, ::2]
            assert iou(out, want) > 0.8, (rule, out_size)


def skin_norm():
    """A norm whose mean (the training images' mean luma) is the skin's: no gain for photo()."""
    norm = NORM.clone()
    norm[0] = 200 / 255
    return norm


class NormAware(torch.nn.Module):
    """:class:`DarkIsLesion` on the un-normalised input."""

    def __init__(self, norm):
        super().__init__()
        self.norm = norm

    def forward(self, x):
        return DarkIsLesion()(x * self.norm[1] + self.norm[0])


def test_plain_pipeline_is_the_old_prediction():
    """plain = resize to the training size, threshold the bilinearly resized logits."""
    truth = disc((120, 160), (60, 80), 30)
    img = photo([truth], shape=(120, 160))
    out = predict_mask(DarkIsLesion(), {"size": 40}, NORM, img, tta=False, pipeline="plain")
    assert iou(out, truth) > 0.9
    auto = predict_mask(DarkIsLesion(), {"size": 40}, NORM, img, tta=False)
    assert (auto == out).all()


def test_pipeline_choice_table_by_hand():
    from studies import pipeline_choice as mod

    result = {
        "a": {"clean": [0.9, 0.8], "blur": [0.7, 0.8]},
        "b": {"clean": [1.0, 1.0], "blur": [1.0, 0.9]},
    }
    lines = mod.table(result, ["clean", "blur"]).splitlines()
    assert lines[2] == "| a | 0.850 | 0.750 | 0.100 |"
    assert lines[3] == "| b | 1.000 | 0.950 | 0.050 |"
    assert (
        set(mod.VARIANTS) >= {"plain", "robust"} and mod.VARIANTS["robust"] == P.PIPELINES["robust"]
    )


def test_pipeline_choice_compound_kinds_apply_in_order():
    from studies import pipeline_choice as mod

    mask = disc((90, 150), (45, 60), 15)
    image = np.repeat(mask[..., None] * np.uint8(255), 3, axis=2)  # the image draws its mask
    img, msk = mod.apply_kinds("crop_1_1+crop_3_2", image, mask, np.random.default_rng(4))
    # 90 x 150 -> square 90 x 90 -> its landscape 3:2 window 60 x 90 (crop_3_2 alone: 90 x 135)
    assert img.shape == (60, 90, 3) and msk.shape == (60, 90)
    assert ((img[..., 0] > 127) == msk).all()  # the mask moved with the image through both
    assert msk.sum() == mask.sum()  # the lesion fits both crops whole
