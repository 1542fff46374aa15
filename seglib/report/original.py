"""The ORIGINAL report's conclusions, each restated against our runs with the test behind it.

Used by ``summary``; ``stats`` gives the paired tests. The original's results are single numbers
(no per-image values), so our side carries the uncertainty: a cell's 95% interval against the
original's number, and paired tests between our own cells.
"""

from __future__ import annotations

import math

import numpy as np

from seglib.report.analysis import (
    ORIGINAL_EPOCHS,
    ORIGINAL_SCORES,
    cell_label,
    cell_names,
    cells,
    count_of,
    finished_values,
    fmt_ci,
)
from seglib.report.stats import best_cell, fmt_p, intervals, paired, versus_best

UB = ("unet", "bce")  # the original's best cell


def versus(runs, stats, *, over, gap: float, converged: float, frac: float) -> list[str]:
    """Bullets: scores, best, overfitting, spikes, convergence, stability (each at most about
    three lines). ``stats``: ``summary.run_stats`` of every run; ``over``: the runs whose final
    train-val IoU gap exceeds ``gap``; ``frac``: median convergence epoch / epochs."""
    lines = [t for t in (scores_line(runs), best_line(runs)) if t]
    lines.append(
        f"- Overfitting: the original said every model overfits; here {count_of(len(over), len(stats))} "
        f"end with a train-val IoU gap above {gap} (last epoch; criterion, not a test)."
    )
    lines.append(_vs_spikes(stats))
    if not math.isnan(frac):
        lines.append(
            f"- Convergence: the original converged after 125-150 of {ORIGINAL_EPOCHS} epochs "
            f"({12500 / ORIGINAL_EPOCHS:g}%-{15000 / ORIGINAL_EPOCHS:g}%); here runs reach "
            f"{converged:.0%} of their best val course score at a median {frac:.0%} of their epochs "
            "(a criterion, not a test: the original's curves are not available)."
        )
    lines.append(_vs_stability(stats))
    return lines


def scores_line(runs) -> str:
    iv = {k: v for k, v in intervals(runs, "score").items() if k in ORIGINAL_SCORES}
    if not iv:
        return ""
    above = [k for k in iv if iv[k].low > ORIGINAL_SCORES[k]]
    gains = [iv[k].mean - ORIGINAL_SCORES[k] for k in iv]
    rest = [k for k in iv if k not in above]
    return (
        f"- Scores: for {count_of(len(above), len(iv), 'cells')} our 95% interval of the test course "
        f"score lies above the original's number (gains {min(gains):+.3f} to {max(gains):+.3f})"
        + (
            "."
            if not rest
            else f"; not above: {cell_names(rest)}."
            if len(rest) <= len(above)
            else f"; above: {cell_names(above)} only."
        )
    )


def best_line(runs) -> str:
    best = best_cell(runs, "score")
    head = f"- Best: the original found UNet+BCE best ({ORIGINAL_SCORES[UB]:.3f}); "
    if best is None:
        means = {k: np.mean(v) for k, rs in cells(runs).items() if (v := finished_values(rs))}
        if not means:
            return ""
        top = max(means, key=means.get)
        return head + (
            f"here the highest mean is {cell_label(*top)} ({means[top]:.3f}); without per-image "
            "test metrics there is no test of the difference."
        )
    m = intervals(runs, "score")[best].mean
    if best == UB:
        return head + f"here UNet+BCE has the highest mean test course score too ({m:.3f})."
    c = versus_best(runs, "score").get(UB)
    if c is None:
        return head + f"here the highest mean is {cell_label(*best)} ({m:.3f}); UNet+BCE: no run."
    verdict = "below it" if c.distinct else "not distinguishable from it"
    return head + (
        f"here the highest mean is {cell_label(*best)} ({m:.3f}) and UNet+BCE is {verdict} "
        f"(paired difference {c.diff:+.3f} {fmt_ci(c, sign='+')}, {fmt_p(c.p)})."
    )


def _vs_spikes(stats) -> str:
    parts = []
    for key, (lo, hi) in ((("unet", "focal"), (150, 175)), (("unet2", "bce"), (200, 200))):
        mine = [s for s in stats if (s["net"], s["loss"]) == key]
        if mine:
            eps = [e for s in mine for e, _ in s["spikes"]]
            inside = sum(1 for e in eps if lo <= e <= hi)
            window = f"epoch {lo}" if lo == hi else f"epochs {lo}-{hi}"
            parts.append(
                f"{cell_label(*key)} {len(eps)} in {len(mine)} runs, {inside or 'none'} at "
                f"{window}" + (f" (last at {max(eps)})" if eps else "")
            )
    total = sum(len(s["spikes"]) for s in stats)
    spiky = sum(1 for s in stats if s["spikes"])
    return (
        "- Spikes: the original saw spikes in UNet+Focal (epochs 150-175) and UNet2+BCE (epoch "
        f"200); here {count_of(spiky, len(stats))} show spikes ({total} in all)"
        + "".join(f"; {t}" for t in parts)
        + "."
    )


def _vs_stability(stats) -> str:
    """Correlation vs the other losses, paired by (net, seed): its run's roughness minus the
    mean roughness of the other losses' runs with the same net and seed."""
    rough = {(s["net"], s["loss"], s["seed"]): s["roughness"] for s in stats}
    corr, other = [], []
    for (net, loss, seed), r in rough.items():
        rest = [v for (n, lo, sd), v in rough.items() if (n, sd) == (net, seed) and lo != loss]
        rest = [v for v in rest if not math.isnan(v)]
        if loss == "correlation" and rest and not math.isnan(r):
            corr.append(r)
            other.append(float(np.mean(rest)))
    if len(corr) < 2:  # a paired test needs two pairs at least
        return (
            f"- Stability: {len(corr)} Correlation run(s) with runs of other losses of the same "
            "net and seed: too few pairs to compare (a paired test needs two)."
        )
    c = paired(corr, other)
    verdict = (
        "not distinguishable"
        if not c.distinct
        else ("Correlation is rougher" if c.diff > 0 else "Correlation is smoother")
    )
    return (
        "- Stability: the original found Correlation unstable for all nets; here its val course "
        f"score moves {np.mean(corr):.3f} per epoch after the first quarter vs {np.mean(other):.3f} "
        f"for the other losses (paired by net and seed, {len(corr)} pairs: {c.diff:+.3f} "
        f"{fmt_ci(c, sign='+')}, {fmt_p(c.p)}): {verdict}."
    )
