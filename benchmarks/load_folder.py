"""Loading speed of a paired image/mask folder: first load and cached load.

Generates ``--n`` ISIC-style pairs (``ISIC_nnnnnnn.jpg`` + ``ISIC_nnnnnnn_segmentation.png``, the
synthetic PH2-like cases of ``seglib.data.synth`` at ``--height`` x ``--width``) once into ``--root``
(kept and reused: generation is not timed), then times ``seglib.data.load_dataset(root, size)``
with an empty tensor cache (the first load: list, pair, decode, resize, save the cache) and then
``--repeats`` times from the cache (median). The targets (2 cores): first load of
2,000 pairs at 128 px under 2 minutes, cached load under 5 s.

The image files are read from the OS page cache when they were just generated; for a cold-disk
first load, drop the page cache before running (Linux, root: ``sync; echo 3 >
/proc/sys/vm/drop_caches``). Run on a quiet machine: other jobs on the cores skew the numbers.

    python -m benchmarks.load_folder                       # 2000 pairs of 600x450 at 128 px
    python -m benchmarks.load_folder --n 100 --root /tmp/isic100
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

FIRST_TARGET_S, CACHED_TARGET_S = 120.0, 5.0


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=2000, help="pairs (default 2000)")
    p.add_argument("--width", type=int, default=600)
    p.add_argument("--height", type=int, default=450)
    p.add_argument("--size", type=int, default=128, help="loaded side in pixels (default 128)")
    p.add_argument("--repeats", type=int, default=3, help="cached loads (median reported)")
    p.add_argument("--root", help="dataset parent folder (default: a folder in the temp dir)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse(sys.argv[1:] if argv is None else argv)
    root = Path(a.root or Path(tempfile.gettempdir()) / f"seglib-isic-{a.n}-{a.width}x{a.height}")
    with tempfile.TemporaryDirectory(prefix="seglib-load-cache-") as cache:
        os.environ["SEGLIB_CACHE"] = cache  # an empty tensor cache: the first load is a first
        from seglib.data.ph2 import load_dataset
        from seglib.data.synth import make_synthetic_pairs

        t0 = time.perf_counter()
        top = make_synthetic_pairs(root, n=a.n, seed=0, layout="isic", shape=(a.height, a.width))
        gen = time.perf_counter() - t0
        mb = sum(f.stat().st_size for f in top.iterdir()) / 2**20
        print(f"# {a.n} ISIC-style pairs of {a.width}x{a.height} in {top} ({mb:.0f} MB; "
              f"generated or reused in {gen:.1f} s), load at {a.size} px, "
              f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")  # fmt: skip
        t0 = time.perf_counter()
        first = load_dataset(top, a.size, progress=False)
        t_first = time.perf_counter() - t0
        cached = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            again = load_dataset(top, a.size, progress=False)
            cached.append(time.perf_counter() - t0)
        assert again.names == first.names and len(first) == a.n
        t_cached = statistics.median(cached)
    scale = a.n / 2000
    print(f"first load   {t_first:8.2f} s  ({a.n / t_first:.0f} pairs/s; target for 2000: "
          f"< {FIRST_TARGET_S:.0f} s, this n scaled: < {FIRST_TARGET_S * scale:.1f} s)")  # fmt: skip
    print(f"cached load  {t_cached:8.2f} s  (median of {a.repeats}; target for 2000: "
          f"< {CACHED_TARGET_S:.0f} s, this n scaled: < {CACHED_TARGET_S * scale:.2f} s)")  # fmt: skip
    ok = t_first < FIRST_TARGET_S * scale and t_cached < CACHED_TARGET_S * scale
    print(f"targets {'met' if ok else 'MISSED'} (first and cached, for n = {a.n})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
