"""The side-by-side section's pure parts: the threads of each pair setting on machines of 1, 2
and 8 cores, and its ratio, hand-worked."""

from __future__ import annotations

import pytest

from seglib.bench.sidebyside import pair_ratio, pair_threads


@pytest.mark.parametrize(
    "cores, want",
    [
        (2, {"old": (2, 2), "new": (2, 1), "split": (1, 1)}),  # the latecomer takes the free core
        (1, {"old": (1, 1), "new": (1, 1), "split": (1, 1)}),
        (8, {"old": (8, 8), "new": (8, 1), "split": (4, 4)}),
    ],
)
def test_pair_threads(cores, want):
    assert pair_threads(cores) == want


def test_pair_ratio_is_the_slower_over_twice_alone():
    assert pair_ratio([2.0, 3.0], 1.5) == pytest.approx(1.0)  # 3 / (2 x 1.5)
    assert pair_ratio([6.4, 6.0], 2.0) == pytest.approx(1.6)
