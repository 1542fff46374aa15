"""Uncertainty of the test results: 95% intervals of cell means and paired comparisons.

All resampling is done by ``scipy.stats`` (``bootstrap``, ``permutation_test``) with a fixed
generator, so the same results give the same numbers (and a byte-stable report).

Data: a cell (net, loss) has one run per training seed, each tested on the same test images, so
its per-image metric is a (seeds x images) matrix ``X``; the cell's result is ``X.mean()``.

Interval scheme: a two-way ("pigeonhole") bootstrap that resamples test images and, where a
cell has several seeds, seeds too, independently, and takes the mean of ``X`` over the resampled
rows and columns (Owen 2007, "The pigeonhole bootstrap", Ann. Appl. Stat. 1(2)). Why both: the
test images are a sample of the lesions one would meet, and the seeds a sample of the training
runs one would get; resampling only images would treat three trained runs as the only possible
ones and understate the spread between seeds (UNet+Correlation's seeds span 0.81-0.87). The
two-way bootstrap is mildly conservative for crossed designs (Owen 2007), the safe side for a
claim. Interval: percentile (Efron & Tibshirani 1993, ch. 13), 9999 resamples; BCa is not used
because three seeds give a bootstrap distribution full of ties, which upsets its bias correction.

Comparisons are paired: cell A minus cell B on the same test image and the same seed index
(``D = XA - XB``; where the two cells have different seed counts, the seed means per image are
paired). The interval of the mean of ``D`` uses the scheme above and decides whether two cells
are *distinguishable* (interval excludes 0). The p-value is a two-sided paired permutation test
(sign flips of the per-image differences of the seed means; exact where 2**images <= 9999): it
asks whether the difference exceeds what the test images' variation explains for these trained
runs; it ignores seed variation, so it is the more lenient of the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import stats as sps

from seglib.report.analysis import cells

SEED = 0
N_RESAMPLES = 9999
LEVEL = 0.95
METRIC_KEYS = {"score": "score_per_image", "iou": "iou_per_image", "dice": "dice_per_image"}


@dataclass(frozen=True)
class Interval:
    """A mean and its ``LEVEL`` interval."""

    mean: float
    low: float
    high: float


@dataclass(frozen=True)
class Comparison:
    """Mean paired difference A - B, its ``LEVEL`` interval and a two-sided p-value."""

    diff: float
    low: float
    high: float
    p: float

    @property
    def distinct(self) -> bool:
        """True when the interval excludes 0."""
        return self.low > 0 or self.high < 0


def fmt_p(p: float) -> str:
    """``p 0.042``, or ``p < 0.001`` (the resolution of 9999 permutations)."""
    return "p < 0.001" if p < 0.001 else f"p {p:.3f}"


def _rng() -> np.random.Generator:
    return np.random.default_rng(SEED)


def _two_way_stat(x: np.ndarray):
    """Statistic for ``scipy.stats.bootstrap`` over index samples: the mean of ``x`` over the
    resampled seeds (rows) and images (columns); one sample (images) when ``x`` has one row."""

    def stat(*idx, axis=-1):
        if len(idx) == 1:
            return x[0][idx[0]].mean(axis=-1)
        s, i = idx
        return x[s[..., :, None], i[..., None, :]].mean(axis=(-2, -1))

    return stat


@lru_cache(maxsize=4096)
def _interval(buf: bytes, shape: tuple[int, int]) -> Interval:
    x = np.frombuffer(buf, dtype=float).reshape(shape)
    mean = float(x.mean())
    if np.ptp(x) == 0:  # degenerate: every resample has the same mean
        return Interval(mean, mean, mean)
    idx = [np.arange(n) for n in shape] if shape[0] > 1 else [np.arange(shape[1])]
    res = sps.bootstrap(
        idx,
        _two_way_stat(x),
        n_resamples=N_RESAMPLES,
        vectorized=True,
        confidence_level=LEVEL,
        method="percentile",
        random_state=_rng(),
    )
    ci = res.confidence_interval
    return Interval(mean, float(ci.low), float(ci.high))


def mean_interval(x) -> Interval:
    """Mean of a (seeds x images) matrix (or one row of images) and its two-way bootstrap
    interval (module docstring)."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    return _interval(np.ascontiguousarray(x).tobytes(), x.shape)


@lru_cache(maxsize=4096)
def _p_value(buf: bytes, n: int) -> float:
    a, b = np.frombuffer(buf, dtype=float).reshape(2, n)
    if np.all(a == b):
        return 1.0
    res = sps.permutation_test(
        (a, b),
        lambda x, y, axis=-1: np.mean(x - y, axis=axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=N_RESAMPLES,
        alternative="two-sided",
        random_state=_rng(),
    )
    return float(res.pvalue)


def paired(a, b) -> Comparison:
    """Paired comparison of cells ``a`` and ``b``, (seeds x images) matrices on the same images
    (module docstring): mean of ``a - b``, its interval, and the permutation p-value."""
    a, b = (np.atleast_2d(np.asarray(v, dtype=float)) for v in (a, b))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"paired: {a.shape[1]} vs {b.shape[1]} test images")
    d = a - b if a.shape == b.shape else a.mean(0, keepdims=True) - b.mean(0, keepdims=True)
    ci = mean_interval(d)
    p = _p_value(np.ascontiguousarray(np.vstack([a.mean(0), b.mean(0)])).tobytes(), a.shape[1])
    return Comparison(ci.mean, ci.low, ci.high, p)


def per_image(runs: list[dict], metric: str = "score") -> np.ndarray | None:
    """(seeds x images) matrix of the runs' per-image test ``metric``, images sorted by name;
    None when a run lacks per-image values or the runs were tested on different images."""
    key = METRIC_KEYS[metric]
    rows = []
    for r in runs:
        t = r.get("test") or {}
        if key not in t or "names" not in t or len(t[key]) != len(t["names"]):
            return None
        rows.append(dict(zip(t["names"], t[key])))
    if not rows or any(set(row) != set(rows[0]) for row in rows):
        return None
    names = sorted(rows[0])
    return np.array([[row[n] for n in names] for row in rows], dtype=float)


def matrices(runs: list[dict], metric: str = "score") -> dict[tuple[str, str], np.ndarray]:
    """``per_image`` of every finished cell that has per-image values on common test images."""
    out = {}
    for key, rs in cells([r for r in runs if r.get("test")]).items():
        x = per_image(rs, metric)
        if x is not None:
            out[key] = x
    if len({x.shape[1] for x in out.values()}) > 1:
        return {}
    return out


def intervals(runs: list[dict], metric: str = "score") -> dict[tuple[str, str], Interval]:
    """Per cell: mean test ``metric`` and its interval."""
    return {k: mean_interval(x) for k, x in matrices(runs, metric).items()}


def best_cell(runs: list[dict], metric: str = "score") -> tuple[str, str] | None:
    """The cell with the highest mean test ``metric`` (first in display order on ties)."""
    iv = intervals(runs, metric)
    return max(iv, key=lambda k: iv[k].mean) if iv else None


def versus_best(runs: list[dict], metric: str = "score") -> dict[tuple[str, str], Comparison]:
    """Every other cell minus the best cell (negative differences: below the best)."""
    xs, best = matrices(runs, metric), best_cell(runs, metric)
    return {k: paired(x, xs[best]) for k, x in xs.items() if k != best}


def versus_bce(runs: list[dict], metric: str = "score") -> dict[tuple[str, str], Comparison]:
    """Within each net, every other loss minus BCE (cells whose net has a BCE cell)."""
    xs = matrices(runs, metric)
    return {
        (n, lo): paired(x, xs[(n, "bce")])
        for (n, lo), x in xs.items()
        if lo != "bce" and (n, "bce") in xs
    }


def indistinguishable(runs: list[dict], metric: str = "score") -> list[tuple[str, str]]:
    """Cells whose paired interval against the best cell contains 0 (the best not included)."""
    return [k for k, c in versus_best(runs, metric).items() if not c.distinct]
