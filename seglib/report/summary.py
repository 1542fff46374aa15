"""Data-driven markdown summary of runs: best cells, convergence, overfitting, spikes, cost, and
the ORIGINAL report's conclusions restated against our numbers. No result is typed by hand."""

from __future__ import annotations

import math

import numpy as np

from seglib.report.analysis import (
    cell_label,
    cell_names,
    cells,
    convergence_epoch,
    count_of,
    curve,
    display,
    find_spikes,
    finished_values,
    fmt_cell,
    fmt_ci,
    roughness,
    run_key,
)
from seglib.report.original import best_line, scores_line, versus
from seglib.report.stats import best_cell, fmt_p, intervals, versus_bce, versus_best
from seglib.store import dataset_of

CONVERGED = 0.95  # a run has converged once its val curve first reaches 95% of its best
OVERFIT_GAP = 0.05  # final train IoU - val IoU above this counts as overfitting
SPIKE_DROP, SPIKE_WINDOW = 0.1, 5


def run_stats(run: dict) -> dict:
    """Numbers the summary uses for one run (NaN/None where the history lacks them)."""
    net, loss, seed = run_key(run)
    e, score = curve(run, "val_score")
    _, viou = curve(run, "val_iou")
    last = (run.get("history") or [{}])[-1]
    test = run.get("test") or {}
    nan = math.nan
    best = float(np.nanmax(score)) if len(score) and not np.isnan(score).all() else nan
    return {
        "label": f"{cell_label(net, loss)} s{seed}" + (" (refit)" if _is_refit(run) else ""),
        "net": net,
        "loss": loss,
        "seed": seed,
        "epochs": int(e[-1]) if len(e) else 0,
        "best_val_score": best,
        "best_val_epoch": int(e[np.nanargmax(score)]) if not math.isnan(best) else None,
        "final_val_score": float(score[-1]) if len(score) else nan,
        "conv_score": convergence_epoch(score, CONVERGED, e),
        "conv_iou": convergence_epoch(viou, CONVERGED, e),
        "iou_gap": _get(last, "train_iou") - _get(last, "val_iou"),
        "train_loss": _get(last, "train_loss"),
        "val_loss": _get(last, "val_loss"),
        "spikes": find_spikes(score, SPIKE_DROP, SPIKE_WINDOW, e),
        "roughness": roughness(score),
        "params": test.get("params"),
        "seconds": test.get("train_seconds"),
    }


def _is_refit(run: dict) -> bool:
    return bool((run.get("config") or {}).get("refit"))


def refit_note(runs: list[dict]) -> list[str]:
    """A warning line when some ``runs`` are refits (``run --refit``: trained on train + val),
    whose "val" numbers are measured on images they learnt from; none otherwise."""
    refits = [r for r in runs if _is_refit(r)]
    if not refits:
        return []
    names = ", ".join(sorted(r["name"] for r in refits))
    return [
        f"**Refits** ({len(refits)} of {len(runs)} runs: {names}) trained on the val images too: "
        "their val numbers (best val, convergence, train-val gap, spikes) are measured on images "
        "they learnt from, and their checkpoint is the last epoch or the `--swa` average, not "
        "a choice on val. Only their test numbers measure generalisation.",
        "",
    ]


def _get(d: dict, key: str) -> float:
    v = d.get(key)
    return math.nan if v is None else float(v)


def params_text(p) -> str:
    return "?" if p is None else (f"{p / 1e6:.2f} M" if p >= 1e5 else f"{int(p):,}")


METRIC_NAMES = {"score": "course score", "iou": "IoU"}


def _best_lines(runs: list[dict]) -> list[str]:
    groups = {k: rs for k, rs in cells(runs).items() if finished_values(rs)}
    if not groups:
        return ["No finished runs yet (no test.json), so no test results."]
    lines = []
    for metric, name in METRIC_NAMES.items():
        iv, best = intervals(runs, metric), best_cell(runs, metric)
        if not iv:
            top = max(groups, key=lambda k: np.mean(finished_values(groups[k], metric)))
            vals = finished_values(groups[top], metric)
            lines.append(
                f"- Test {name}: highest mean {cell_label(*top)} {fmt_cell(vals)}; the runs "
                "have no per-image test metrics, so there is no interval and no ranking claim."
            )
            continue
        vs = versus_best(runs, metric)
        below = [k for k, c in vs.items() if c.distinct]
        same = [k for k, c in vs.items() if not c.distinct]
        b = iv[best]
        text = (
            f"- Test {name}: highest mean **{cell_label(*best)} {b.mean:.3f} "
            f"[{b.low:.3f}, {b.high:.3f}]**; of the other {len(vs)} cells, "
        )
        if len(same) <= len(below):
            text += (
                f"{len(same)} {'is' if len(same) == 1 else 'are'} not distinguishable from it "
                "(paired 95% interval of the "
                f"difference contains 0): {(cell_names(same) or 'none')}; the other {len(below)} are below it."
            )
        else:
            text += (
                f"{len(below)} {'is' if len(below) == 1 else 'are'} below it (paired 95% "
                "interval of the difference excludes 0): "
                f"{(cell_names(below) or 'none')}; the other {len(same)} are not distinguishable from it."
            )
        lines.append(text)
    for metric, name in METRIC_NAMES.items():
        vb = versus_bce(runs, metric)
        if vb:
            lines.append(_vs_bce_line(vb, name))
    return lines


def claims(runs: list[dict]) -> list[str]:
    """The test-result bullets of ``summary`` (best cells, losses vs BCE) and the two original
    comparisons about test results (scores, best), these only for runs on PH2 (the original's
    data): the README's short version."""
    runs = [r for r in runs if r.get("test")]
    if dataset_of(runs) != "PH2":
        return _best_lines(runs)
    return _best_lines(runs) + [t for t in (scores_line(runs), best_line(runs)) if t]


def _vs_bce_line(vb: dict, name: str) -> str:
    diff = {k: c for k, c in vb.items() if c.distinct}
    head = f"- Each loss vs BCE within its net (test {name}, paired): "
    if not diff:
        k = min(vb, key=lambda k: vb[k].p)
        return head + (
            f"none of the {len(vb)} intervals of the difference excludes 0, so no loss is shown "
            f"better or worse than BCE (smallest {fmt_p(vb[k].p)}: {cell_label(*k)} "
            f"{vb[k].diff:+.3f} {fmt_ci(vb[k], sign='+')})."
        )
    parts = [f"{len(diff)} of {len(vb)} intervals of the difference exclude 0"]
    parts += [
        f"{side} BCE: {cell_names(k for k, c in diff.items() if (c.diff > 0) == (side == 'above')) or 'none'}"
        for side in ("above", "below")
    ]
    if len(diff) < len(vb):
        parts.append("the others are not distinguishable from BCE")
    return head + "; ".join(parts) + "."


def _convergence(stats: list[dict]) -> tuple[str, float]:
    ok = [s for s in stats if s["conv_score"] is not None and s["epochs"]]
    if not ok:
        return "No val course score recorded yet.", math.nan
    ep = [s["conv_score"] for s in ok]
    frac = float(np.median([s["conv_score"] / s["epochs"] for s in ok]))
    iou = [s["conv_iou"] for s in ok if s["conv_iou"] is not None]
    text = (
        f"Runs first reach {CONVERGED:.0%} of their best val course score at a median epoch of "
        f"{np.median(ep):.0f} (range {min(ep)}-{max(ep)}), i.e. {frac:.0%} of their epochs (median)"
        + (f"; for val IoU the median epoch is {np.median(iou):.0f}." if iou else ".")
    )
    return text, frac


def _overfitting(stats: list[dict]) -> str:
    gaps = [s for s in stats if not math.isnan(s["iou_gap"])]
    if not gaps:
        return "No train/val IoU recorded yet."
    n, over = len(stats), sum(1 for s in gaps if s["iou_gap"] > OVERFIT_GAP)
    worst = max(gaps, key=lambda s: s["iou_gap"])
    vl = sum(1 for s in stats if s["val_loss"] > s["train_loss"])
    return (
        f"{count_of(over, n).capitalize()} end with train IoU more than {OVERFIT_GAP} above val IoU "
        f"(median gap {np.median([s['iou_gap'] for s in gaps]):+.3f}, largest {worst['label']} "
        f"{worst['iou_gap']:+.3f}); {count_of(vl, n)} end with val loss above train loss."
    )


def _spikes(stats: list[dict]) -> str:
    counts = [len(s["spikes"]) for s in stats]
    deep = sorted(((s, e, d) for s in stats for e, d in s["spikes"]), key=lambda t: -t[2])[:3]
    ended = [s for s in stats if s["final_val_score"] <= s["best_val_score"] - SPIKE_DROP]
    text = (
        f"A spike is a val course score drop of at least {SPIKE_DROP} below the best so far that "
        f"recovers to within {SPIKE_DROP / 2:g} of it within {SPIKE_WINDOW} epochs. "
        f"{count_of(sum(1 for c in counts if c), len(stats)).capitalize()} show spikes ({sum(counts)} "
        f"in all; per run median {np.median(counts):g}, range {min(counts)}-{max(counts)})"
    )
    if deep:
        text += "; deepest: " + ", ".join(f"{s['label']} epoch {e} ({d:.2f})" for s, e, d in deep)
    names = ", ".join(s["label"] for s in ended[:3]) + (", ..." if len(ended) > 3 else "")
    return text + (
        f". Runs ending at least {SPIKE_DROP} below their best val score: "
        + (f"{len(ended)} ({names})." if ended else "none.")
    )


def summary(runs: list[dict]) -> str:
    """Markdown summary: best cells, convergence, overfitting, spikes, cost, original vs ours.

    Definitions (module constants):
    - best: highest mean test course score (and IoU) over a cell's test images and seeds, with
      the cells not distinguishable from it by a paired test (``stats``); each loss vs BCE;
    - convergence: first epoch whose val course score reaches ``CONVERGED`` (95%) of the run's
      best; the course score is stepped, so the same epoch for val IoU is given too;
    - overfitting: last-epoch train IoU - val IoU above ``OVERFIT_GAP``; val vs train loss;
    - spikes: ``analysis.find_spikes`` on val course score with ``SPIKE_DROP``, ``SPIKE_WINDOW``;
    - stability: ``analysis.roughness``, mean |epoch-to-epoch change| after the first quarter.
    """
    runs = [r for rs in cells([r for r in runs if r.get("history")]).values() for r in rs]
    if not runs:
        return "No runs with a history found."
    stats = [run_stats(r) for r in runs]
    done = sum(1 for r in runs if r.get("test"))
    lo, hi = min(s["epochs"] for s in stats), max(s["epochs"] for s in stats)
    conv, frac = _convergence(stats)
    over = [s for s in stats if s["iou_gap"] > OVERFIT_GAP]
    note = refit_note(runs)
    return "\n".join(
        note
        + [
            f"{len(stats)} runs ({done} finished) over {len(cells(runs))} (net, loss) cells; "
            + (f"{lo} epochs each." if lo == hi else f"{lo} to {hi} epochs."),
            "",
            "### Best (test set, best-val-IoU checkpoint"
            + ("; refits: see above)" if note else ")"),
            *_best_lines(runs),
            "",
            "### Convergence",
            conv,
            "",
            "### Overfitting (last epoch)",
            _overfitting(stats),
            "",
            "### Spikes",
            _spikes(stats),
            "",
            "### Model size and training time",
            _cost(stats),
        ]
        + (  # the original report was on PH2: compare only there
            [
                "",
                "### Compared with the original report",
                *versus(runs, stats, over=over, gap=OVERFIT_GAP, converged=CONVERGED, frac=frac),
            ]
            if dataset_of(runs) == "PH2"
            else []
        )
    )


def _cost(stats: list[dict]) -> str:
    per_net = {}
    for s in stats:
        if s["params"] is not None:
            per_net.setdefault(s["net"], s["params"])
    timed = [s for s in stats if s["seconds"] is not None and s["epochs"]]
    text = "Parameters: " + (
        ", ".join(f"{display(k)} {params_text(v)}" for k, v in per_net.items()) or "unknown"
    )
    if timed:
        spe = sorted(timed, key=lambda s: s["seconds"] / s["epochs"])
        text += (
            f". Training took {sum(s['seconds'] for s in timed) / 3600:.2f} h over {len(timed)} "
            f"runs; per epoch from {spe[0]['seconds'] / spe[0]['epochs']:.1f} s "
            f"({spe[0]['label']}) to {spe[-1]['seconds'] / spe[-1]['epochs']:.1f} s "
            f"({spe[-1]['label']})"
        )
    return text + "."
