"""Two robustness tables (``python -m seglib robustness ... --json``) of the same images,
compared with their uncertainty: per kind, the IoU of each, the paired difference A - B with its
95% bootstrap interval and permutation p-value (``seglib.report.stats.paired``), and A's drop vs clean
with its interval (``seglib.report.stats.mean_interval`` of the per-image drops).

    python -m studies.robustness_versus results/robustness/shipped_robust_test.json \\
        results/robustness/baseline_w8.json

50 test images give a mean IoU an interval about +-0.02 wide: this says which differences
(between models, or against a target) the split can resolve at all.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from seglib.report.stats import fmt_p, mean_interval, paired


def per_kind(table: dict) -> dict[str, np.ndarray]:
    """{kind: per-image IoU} of a robustness JSON."""
    return {r["kind"]: np.asarray(r["iou_per_image"], float) for r in table["rows"]}


def compare(a: dict, b: dict) -> list[dict]:
    """One row per kind both tables hold (A's order): IoU of each, the paired A - B and A's
    drop vs its clean, each with its 95% interval. ValueError when the images differ."""
    if a["names"] != b["names"]:
        raise ValueError("the two tables score different images (their 'names' differ)")
    ka, kb = per_kind(a), per_kind(b)
    rows = []
    for kind, x in ka.items():
        if kind not in kb:
            continue
        c, drop = paired(x, kb[kind]), mean_interval(ka["clean"] - x)
        rows.append(
            {"kind": kind, "a": mean_interval(x), "b": float(kb[kind].mean()), "diff": c,
             "drop": drop}
        )  # fmt: skip
    return rows


def _signed(x: float) -> str:
    return f"{round(x, 3) + 0.0:+.3f}"  # + 0.0: no "-0.000"


def table(rows: list[dict]) -> str:
    """Markdown of :func:`compare`'s rows."""
    out = [
        "| kind | IoU A [95% CI] | IoU B | A - B [95% CI] | p | drop A [95% CI] |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        a, d, dr = r["a"], r["diff"], r["drop"]
        out.append(
            f"| {r['kind']} | {a.mean:.3f} [{a.low:.3f}, {a.high:.3f}] | {r['b']:.3f} | "
            f"{_signed(d.diff)} [{_signed(d.low)}, {_signed(d.high)}] | {fmt_p(d.p)} | "
            f"{_signed(dr.mean)} [{_signed(dr.low)}, {_signed(dr.high)}] |"
        )
    return "\n".join(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", help="robustness JSON of model A")
    ap.add_argument("b", help="robustness JSON of model B (same split and images)")
    a = ap.parse_args(argv)
    ta, tb = (json.loads(Path(p).read_text()) for p in (a.a, a.b))
    print(f"A = {a.a}\nB = {a.b}\n{ta['split']} split, {ta['n']} images, IoU\n")
    print(table(compare(ta, tb)))


if __name__ == "__main__":
    main()
