"""One results folder against another, e.g. a reproduction against the committed results: per
cell, the paired difference of the test metric, new minus old, with its 95% interval.

Pairs are the same test image (and seed index, where both cells have the same seeds; else the
seed means per image), as in ``stats.paired``. A cell whose interval contains 0 is reproduced
within what the test images and seeds explain; one whose interval excludes 0 differs.
"""

from __future__ import annotations

from seglib.report.analysis import cell_names, cells, losses_of, nets_of
from seglib.report.stats import fmt_p, matrices, paired
from seglib.report.tables import grid_markdown
from seglib.store import dataset_of

METRICS = {"score": "course score", "iou": "IoU", "dice": "Dice"}


def _test_names(runs: list[dict]) -> dict:
    """Per cell, the sorted test image names of its first finished run."""
    return {
        k: sorted(rs[0]["test"].get("names") or [])
        for k, rs in cells([r for r in runs if r.get("test")]).items()
    }


def differences(new: list[dict], old: list[dict], metric: str = "iou") -> dict:
    """Per cell of both: ``stats.Comparison`` of new minus old, or None where the two were tested
    on other images (nothing to pair)."""
    a, b = matrices(new, metric), matrices(old, metric)
    na, nb = _test_names(new), _test_names(old)
    return {
        k: paired(a[k], b[k]) if na.get(k) == nb.get(k) and a[k].shape[1] == b[k].shape[1] else None
        for k in a
        if k in b
    }


def compare_markdown(new: list[dict], old: list[dict], names=("new", "old")) -> str:
    """Markdown: for the course score and IoU, a grid of each cell's new and old mean and the
    paired difference new - old with its interval and p-value, then which cells differ."""
    n, o = names
    parts = [f"# {n} vs {o}", ""]
    if dataset_of(new) != dataset_of(old):
        parts += [f"**Other data**: {n} is on {dataset_of(new)}, {o} on {dataset_of(old)}.", ""]
    parts += [
        f"Per cell: mean test value {n} vs {o}, then {n} - {o} [95% interval, bootstrap over test "
        "images and seeds], p: paired permutation test over the test images; ≈: the interval "
        "contains 0 (reproduced within the test images' and seeds' variation).",
        "",
    ]
    for metric in ("score", "iou"):
        diffs = differences(new, old, metric)
        a, b = matrices(new, metric), matrices(old, metric)
        parts += [f"## Test {METRICS[metric]}: {n} - {o}", ""]
        if not diffs:
            parts += ["No cell of both folders has per-image test metrics: nothing to pair.", ""]
            continue

        def cell(net, loss, diffs=diffs, a=a, b=b):
            k = (net, loss)
            if k not in diffs:
                return "–"
            c = diffs[k]
            head = f"{a[k].mean():.3f} vs {b[k].mean():.3f}"
            if c is None:
                return f"{head}: other test images"
            ci = f"[{c.low:+.3f}, {c.high:+.3f}]"
            return f"{head}: {c.diff:+.3f} {ci}, {fmt_p(c.p)}" + ("" if c.distinct else " ≈")

        parts += [grid_markdown(nets_of(new), losses_of(new), cell), "", verdict(diffs), ""]
    return "\n".join(parts)


def verdict(diffs: dict) -> str:
    """One sentence: how many paired cells are reproduced (interval contains 0), which differ."""
    paired_ = {k: c for k, c in diffs.items() if c is not None}
    differ = [k for k, c in paired_.items() if c.distinct]
    text = f"{len(paired_) - len(differ)} of {len(paired_)} cells reproduced (interval contains 0)"
    text += f"; differ: {cell_names(differ)}." if differ else "."
    unpaired = [k for k, c in diffs.items() if c is None]
    if unpaired:
        text += f" Not paired (other test images): {cell_names(unpaired)}."
    return text
