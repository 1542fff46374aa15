"""The seeded (train, val, test) split of a dataset's cases."""

from __future__ import annotations

import numpy as np


def split_indices(
    n: int, seed: int = 0, fractions: tuple[float, float, float] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random (train, val, test) index arrays, 50% / 25% / 25% (100/50/50 for n=200).

    val and test get ``n // 4`` each, train the rest; with ``fractions`` (train, val, test),
    non-negative and summing to 1, val and test get ``round(n * fraction)`` each, train the rest.
    Each array is sorted. The permutation is ``numpy.random.default_rng(seed).permutation(n)``,
    so the split is deterministic per seed.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    perm = np.random.default_rng(seed).permutation(n)
    if fractions is None:
        n_val = n_test = n // 4
    else:
        fr = [float(f) for f in fractions]
        if len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1) > 1e-6:
            raise ValueError(
                f"split fractions must be 3 numbers >= 0 summing to 1, got {fractions}"
            )
        n_val = round(n * fr[1])
        n_test = min(round(n * fr[2]), n - n_val)
    n_train = n - n_val - n_test
    train, val, test = np.split(perm, [n_train, n_train + n_val])
    return np.sort(train), np.sort(val), np.sort(test)
