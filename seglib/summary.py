"""Data-driven markdown summary of runs: best cells, convergence, overfitting, spikes, cost, and
the ORIGINAL report's conclusions restated against our numbers. No result is typed by hand."""

from __future__ import annotations

import math

import numpy as np

from .analysis import (
    ORIGINAL_EPOCHS,
    ORIGINAL_SCORES,
    cell_label,
    cells,
    convergence_epoch,
    curve,
    display,
    find_spikes,
    finished_values,
    fmt_cell,
    losses_of,
    nets_of,
    roughness,
    run_key,
)
from .store import dataset_of

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
        "label": f"{cell_label(net, loss)} s{seed}",
        "net": net,
        "loss": loss,
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


def _get(d: dict, key: str) -> float:
    v = d.get(key)
    return math.nan if v is None else float(v)


def _of(k: int, n: int, what: str = "runs") -> str:
    return (
        f"all {n} {what}" if k == n else ("none of the" if k == 0 else f"{k} of") + f" {n} {what}"
    )


def params_text(p) -> str:
    return "?" if p is None else (f"{p / 1e6:.2f} M" if p >= 1e5 else f"{int(p):,}")


def _best_lines(runs: list[dict]) -> list[str]:
    groups = {k: rs for k, rs in cells(runs).items() if finished_values(rs)}
    if not groups:
        return ["No finished runs yet (no test.json), so no test results."]

    def desc(key):
        rs = groups[key]
        s, i, d = (finished_values(rs, m) for m in ("score", "iou", "dice"))
        n = f", mean of {len(s)} seeds" if len(s) > 1 else ""
        return (
            f"{cell_label(*key)}: test course score {fmt_cell(s)} "
            f"(IoU {fmt_cell(i)}, Dice {fmt_cell(d)}{n})"
        )

    def best(keys):
        return max(keys, key=lambda k: np.mean(finished_values(groups[k])))

    top = best(groups)
    lines = [f"- Best overall: **{desc(top)}**."]
    for net in nets_of(runs):
        keys = [k for k in groups if k[0] == net]
        if keys:
            lines.append(f"- Best for {display(net)}: {desc(best(keys))}.")
    for loss in losses_of(runs):
        keys = [k for k in groups if k[1] == loss]
        if keys:
            lines.append(f"- Best with {display(loss)}: {desc(best(keys))}.")
    return lines


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
        f"{_of(over, n).capitalize()} end with train IoU more than {OVERFIT_GAP} above val IoU "
        f"(median gap {np.median([s['iou_gap'] for s in gaps]):+.3f}, largest {worst['label']} "
        f"{worst['iou_gap']:+.3f}); {_of(vl, n)} end with val loss above train loss."
    )


def _spikes(stats: list[dict]) -> str:
    spiky = sum(1 for s in stats if s["spikes"])
    total = sum(len(s["spikes"]) for s in stats)
    deep = max(((s, e, d) for s in stats for e, d in s["spikes"]), key=lambda t: t[2], default=None)
    ended = [s for s in stats if s["final_val_score"] <= s["best_val_score"] - SPIKE_DROP]
    text = (
        f"A spike is a val course score drop of at least {SPIKE_DROP} below the best so far that "
        f"recovers to within {SPIKE_DROP / 2:g} of it within {SPIKE_WINDOW} epochs. "
        f"{_of(spiky, len(stats)).capitalize()} show spikes ({total} in all)"
    )
    if deep:
        text += f"; the deepest: {deep[0]['label']} at epoch {deep[1]} (depth {deep[2]:.2f})"
    ends = ", ".join(
        f"{s['label']} ({s['final_val_score']:.3f} vs {s['best_val_score']:.3f})" for s in ended
    )
    return (
        text + f". Runs ending at least {SPIKE_DROP} below their best val score: {ends or 'none'}."
    )


def summary(runs: list[dict]) -> str:
    """Markdown summary: best cells, convergence, overfitting, spikes, cost, original vs ours.

    Definitions (module constants):
    - best: highest mean test course score over a cell's finished seeds (IoU, Dice beside);
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
    return "\n".join(
        [
            f"{len(stats)} runs ({done} finished) over {len(cells(runs))} (net, loss) cells; "
            + (f"{lo} epochs each." if lo == hi else f"{lo} to {hi} epochs."),
            "",
            "### Best (test set, best-val-IoU checkpoint)",
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
            ["", "### Compared with the original report", *_versus(runs, stats, over, frac)]
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


def _versus(runs, stats, over, frac) -> list[str]:
    """The original report's conclusions, each restated with our numbers."""
    lines = _vs_best(runs)
    lines.append(
        f"- Overfitting: the original said every model overfits; here {_of(len(over), len(stats))} "
        f"end with a train-val IoU gap above {OVERFIT_GAP}."
    )
    lines.append(_vs_spikes(stats))
    if not math.isnan(frac):
        lines.append(
            f"- Convergence: the original converged after 125-150 of {ORIGINAL_EPOCHS} epochs "
            f"({12500 / ORIGINAL_EPOCHS:g}%-{15000 / ORIGINAL_EPOCHS:g}%); here runs reach "
            f"{CONVERGED:.0%} of their best val course score at a median {frac:.0%} of their epochs."
        )
    lines.append(_vs_stability(stats))
    return lines


def _vs_best(runs) -> list[str]:
    mean = {
        k: float(np.mean(finished_values(rs)))
        for k, rs in cells(runs).items()
        if finished_values(rs)
    }
    ranked = sorted(mean, key=lambda k: -mean[k])
    if not ranked:
        return []
    top, ub = ranked[0], ("unet", "bce")
    ub_text = (
        f"UNet+BCE scores {mean[ub]:.3f} (rank {ranked.index(ub) + 1} of {len(ranked)})"
        if ub in mean
        else "UNet+BCE has no finished run"
    )
    return [
        f"- Best: the original found UNet+BCE best ({ORIGINAL_SCORES[ub]:.3f}, last of "
        f"{ORIGINAL_EPOCHS} epochs); here the best is {cell_label(*top)} ({mean[top]:.3f}) and "
        f"{ub_text}."
    ]


def _vs_spikes(stats) -> str:
    named = []
    for key in (("unet", "focal"), ("unet2", "bce")):
        mine = [s for s in stats if (s["net"], s["loss"]) == key]
        if mine:
            eps = ", ".join(f"{s['label']} epoch {e}" for s in mine for e, _ in s["spikes"])
            named.append(f"{cell_label(*key)} spikes here: {eps or 'none'}")
    spiky = sum(1 for s in stats if s["spikes"])
    return (
        "- Spikes: the original saw spikes (UNet+Focal between epochs 150 and 175, UNet2+BCE at "
        f"epoch 200); here {_of(spiky, len(stats))} show spikes"
        + "".join(f"; {t}" for t in named)
        + "."
    )


def _mean_by(stats, key: str, group: str) -> dict:
    out = {}
    for s in stats:
        if not math.isnan(s[key]):
            out.setdefault(s[group], []).append(s[key])
    return {k: float(np.mean(v)) for k, v in out.items()}


def _vs_stability(stats) -> str:
    rough = _mean_by(stats, "roughness", "loss")
    if "correlation" not in rough:
        return "- Stability: no Correlation runs here to compare."
    order = sorted(rough, key=lambda k: -rough[k])
    nets = sorted({s["net"] for s in stats})
    roughest = [
        max(r, key=r.get)
        for r in (_mean_by([s for s in stats if s["net"] == n], "roughness", "loss") for n in nets)
        if r
    ]
    nsp = sum(len(s["spikes"]) for s in stats if s["loss"] == "correlation")
    return (
        "- Stability: the original found Correlation unstable for all nets; here its val course "
        f"score moves {rough['correlation']:.3f} per epoch on average after the first quarter "
        f"(rank {order.index('correlation') + 1} of {len(order)} losses, most unstable "
        f"{display(order[0])} at {rough[order[0]]:.3f}); it is the most unstable loss for "
        f"{roughest.count('correlation')} of {len(roughest)} nets and has {nsp} spikes in its runs."
    )
