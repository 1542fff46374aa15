"""stats: bootstrap intervals and paired comparisons against hand-worked and reference answers."""

import numpy as np
import pytest
from scipy import stats as sps

from seglib.report import stats


def test_degenerate_interval_and_identical_cells():
    x = np.full((3, 7), 0.8)
    iv = stats.mean_interval(x)
    assert iv.low == iv.mean == iv.high == pytest.approx(0.8)
    c = stats.paired(x, x)
    assert (c.diff, c.low, c.high, c.p) == (0.0, 0.0, 0.0, 1.0) and not c.distinct


def test_interval_matches_t_interval_on_a_large_normal_sample():
    """One seed, 2000 images from N(0.8, 0.1): the bootstrap interval of the mean is the
    t-interval up to Monte Carlo error (about 1.5% of its half-width with 9999 resamples)."""
    x = np.random.default_rng(1).normal(0.8, 0.1, 2000)
    lo, hi = sps.t.interval(0.95, df=len(x) - 1, loc=x.mean(), scale=sps.sem(x))
    iv = stats.mean_interval(x)
    half = (hi - lo) / 2
    assert iv.mean == pytest.approx(x.mean())
    assert iv.low == pytest.approx(lo, abs=0.06 * half)
    assert iv.high == pytest.approx(hi, abs=0.06 * half)


def test_seeds_are_resampled_hand_worked():
    """Three seeds whose images all score 0, 1 and 2: a resample's mean is the mean of three
    seed draws, which is 0 with probability 1/27 = 3.7% > 2.5% (and 2 likewise), so the 95%
    percentile interval is exactly [0, 2]. Resampling images only would give [1, 1]."""
    x = np.repeat([[0.0], [1.0], [2.0]], 5, axis=1)
    iv = stats.mean_interval(x)
    assert (iv.mean, iv.low, iv.high) == (pytest.approx(1.0), 0.0, 2.0)


def test_pairing_by_image_hand_worked():
    """Cell A is cell B plus 0.01 on every one of 10 images whose scores spread from 0.3 to 1:
    paired, the difference is exactly 0.01 and the exact sign-flip p-value is 2 / 2**10 (only
    all-plus and all-minus are as extreme); unpaired, the cells' intervals overlap and an
    unpaired permutation test finds nothing."""
    b = np.linspace(0.3, 0.99, 10)
    a = b + 0.01
    c = stats.paired(a, b)
    assert c.diff == pytest.approx(0.01) and c.distinct
    assert c.low == pytest.approx(0.01) and c.high == pytest.approx(0.01)
    assert c.p == pytest.approx(2 / 2**10)
    ia, ib = stats.mean_interval(a), stats.mean_interval(b)
    assert ia.low < ib.mean < ia.high and ib.low < ia.mean < ib.high  # unpaired: overlap
    unpaired = sps.permutation_test(
        (a, b), lambda x, y, axis: x.mean(axis) - y.mean(axis), vectorized=True, rng=0
    )
    assert unpaired.pvalue > 0.5


def test_pairing_keeps_seed_variation():
    """A - B is 0, 0.02 and 0.04 on every image for seeds 0, 1, 2: the per-image difference of
    the seed means is 0.02 everywhere (p = 2 / 2**8 with 8 images), but the interval resamples
    seeds too and is [0, 0.04] (as in the hand-worked seeds case), so not distinguishable."""
    b = np.tile(np.linspace(0.5, 0.9, 8), (3, 1))
    a = b + np.array([[0.0], [0.02], [0.04]])
    c = stats.paired(a, b)
    assert c.diff == pytest.approx(0.02) and c.p == pytest.approx(2 / 2**8)
    assert (c.low, c.high) == (pytest.approx(0.0), pytest.approx(0.04)) and not c.distinct
    one = stats.paired(a, b[:1])  # different seed counts: the seed means are paired
    assert (one.diff, one.low, one.high) == (pytest.approx(0.02),) * 3


def _run(net, loss, seed, values, names):
    test = dict(score_per_image=list(values), iou_per_image=list(values), names=list(names))
    return dict(name=f"{net}_{loss}_s{seed}", config=dict(net=net, loss=loss, seed=seed), test=test)


def test_per_image_aligns_by_name_and_comparisons():
    names = [f"IMD{i:03d}" for i in range(12)]
    base = np.linspace(0.4, 0.95, 12)
    runs = [
        _run("unet", "bce", 0, base, names),
        _run("unet", "bce", 1, base[::-1] + 0.0, names[::-1]),  # same values, reversed order
        _run("unet", "dice", 0, base + 0.05, names),
        _run("segnet", "bce", 0, base - 0.1, names),
    ]
    x = stats.per_image(runs[:2])
    assert x.shape == (2, 12) and np.array_equal(x[0], x[1])
    assert stats.best_cell(runs) == ("unet", "dice")
    vs = stats.versus_best(runs)
    assert set(vs) == {("unet", "bce"), ("segnet", "bce")}
    assert vs[("segnet", "bce")].diff == pytest.approx(-0.15) and vs[("segnet", "bce")].distinct
    assert stats.indistinguishable(runs) == []
    assert set(stats.versus_bce(runs)) == {("unet", "dice")}
    assert stats.versus_bce(runs)[("unet", "dice")].diff == pytest.approx(0.05)
    del runs[3]["test"]["iou_per_image"]  # an older test.json: that cell has no interval
    assert ("segnet", "bce") not in stats.intervals(runs, "iou")


def test_same_input_same_numbers():
    x = np.random.default_rng(2).uniform(0.5, 1.0, (3, 50))
    stats._interval.cache_clear()
    first = stats.mean_interval(x)
    stats._interval.cache_clear()
    assert stats.mean_interval(x) == first
