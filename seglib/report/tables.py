"""Markdown grids of test results (rows nets, columns losses): means, intervals, paired tests."""

from __future__ import annotations

import numpy as np

from seglib.report.analysis import (
    cell_names,
    cells,
    display,
    finished_values,
    fmt_cell,
    fmt_ci,
    losses_of,
    nets_of,
)
from seglib.report.stats import (
    LEVEL,
    best_cell,
    fmt_p,
    indistinguishable,
    intervals,
    versus_bce,
    versus_best,
)


def grid_markdown(rows: list[str], cols: list[str], cell) -> str:
    """Markdown table: one row per ``rows`` key, one column per ``cols`` key, ``cell(r, c)`` text."""
    lines = ["| | " + " | ".join(display(c) for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for r in rows:
        lines.append(f"| {display(r)} | " + " | ".join(cell(r, c) for c in cols) + " |")
    return "\n".join(lines)


def bold_best(values: dict, text: dict) -> dict:
    best = max(values.values(), default=None)
    return {k: f"**{t}**" if values.get(k) == best else t for k, t in text.items()}


FAILED_IOU = 0.05
"""A cell whose mean test IoU is below this did not learn: its predictions barely meet the
lesions (e.g. 0.000 [0.000, 0.000] when the net predicts no lesion at all)."""
FAILED_MARK = "†"


def failed_cells(runs: list[dict]) -> list[tuple[str, str]]:
    """The (net, loss) cells whose finished runs' mean test IoU is below :data:`FAILED_IOU`."""
    groups = cells([r for r in runs if r.get("test")])
    vals = {k: finished_values(rs, "iou") for k, rs in groups.items()}
    return [k for k, v in vals.items() if v and float(np.mean(v)) < FAILED_IOU]


def with_failed_note(grid: str, failed: list) -> str:
    """``grid`` followed by a note naming the cells that did not learn (none: ``grid``)."""
    if not failed:
        return grid
    return (
        f"{grid}\n\n{FAILED_MARK} Did not learn: {cell_names(failed)} (mean test IoU below "
        f"{FAILED_IOU}: the predictions barely meet the lesions). Not a ranking of the loss: "
        "train longer (--epochs) or at another learning rate (--lr) before comparing it."
    )


def _mark(text: str, key, failed) -> str:
    return f"{text} {FAILED_MARK}" if key in failed else text


def table(runs: list[dict], metric: str = "score", digits: int = 3) -> str:
    """Markdown test table, rows nets and columns losses (finished runs only); best mean in bold;
    cells that did not learn (:func:`failed_cells`) marked and named in a note below.

    ``metric``: a test.json key, "score" (course score), "iou" or "dice".
    """
    groups = cells([r for r in runs if r.get("test")])
    vals = {k: finished_values(rs, metric) for k, rs in groups.items()}
    means = {k: float(np.mean(v)) for k, v in vals.items() if v}
    text = bold_best(means, {k: fmt_cell(v, digits) for k, v in vals.items()})
    failed = failed_cells(runs)
    grid = grid_markdown(
        nets_of(runs), losses_of(runs), lambda n, lo: _mark(text.get((n, lo), "–"), (n, lo), failed)
    )
    return with_failed_note(grid, failed)


def interval_table(runs: list[dict], metric: str = "score", digits: int = 3) -> str:
    """Markdown grid of each cell's mean test ``metric`` and its 95% interval (``stats``): the
    best cell in bold, cells indistinguishable from it (paired interval contains 0) in italics,
    cells that did not learn marked and named below (:func:`failed_cells`). Falls back to ``table`` when the runs carry no per-image test metrics."""
    iv = intervals(runs, metric)
    if not iv:
        return table(runs, metric, digits)
    best, same = best_cell(runs, metric), set(indistinguishable(runs, metric))
    failed = failed_cells(runs)

    def cell(net, loss):
        k = (net, loss)
        if k not in iv:
            return "–"
        m = f"{iv[k].mean:.{digits}f}"
        m = f"**{m}**" if k == best else (f"*{m}*" if k in same else m)
        return _mark(f"{m} {fmt_ci(iv[k], digits)}", k, failed)

    return with_failed_note(grid_markdown(nets_of(runs), losses_of(runs), cell), failed)


INTERVAL_NOTE = (
    f"Mean over test images and seeds, [{LEVEL:.0%} interval] from a bootstrap over test images "
    "and seeds (`seglib/report/stats.py`). **Bold**: the highest mean; *italic*: not distinguishable "
    "from it (the interval of the paired difference contains 0)."
)


PAIRED_NOTE = (
    "Paired by test image and seed: mean difference [95% interval of the mean difference, "
    "bootstrap over test images and seeds], p: two-sided paired permutation test over the test "
    "images (seed means); ≈: the interval contains 0 (not distinguishable)."
)


def versus_table(runs: list[dict], metric: str = "score", against: str = "best") -> str:
    """Markdown grid of paired differences (``stats.versus_best`` or ``stats.versus_bce``): the
    mean difference, its 95% interval and the permutation p-value; "–" where not compared."""
    comps = versus_best(runs, metric) if against == "best" else versus_bce(runs, metric)
    if not comps:
        return "No per-image test metrics, so no paired comparisons."
    ref = best_cell(runs, metric)
    losses = losses_of(runs) if against == "best" else [lo for lo in losses_of(runs) if lo != "bce"]

    def cell(net, loss):
        if against == "best" and (net, loss) == ref:
            return "best"
        c = comps.get((net, loss))
        if c is None:
            return "–"
        return f"{c.diff:+.3f} {fmt_ci(c, 3, '+')}, {fmt_p(c.p)}" + ("" if c.distinct else " ≈")

    return grid_markdown(nets_of(runs), losses, cell)
