"""Markdown report of a results folder: test tables, the ORIGINAL report's table, and a summary.

Every sentence about a result is computed from the runs (see ``summary``); the only typed numbers
are the ORIGINAL report's, ``ORIGINAL_SCORES``, kept for comparison.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seglib.report.analysis import (
    ORIGINAL_EPOCHS,
    ORIGINAL_SCORES,
    cells,
    finished_values,
    losses_of,
    nets_of,
)
from seglib.report.stats import intervals
from seglib.report.summary import (
    claims,
    params_text,
    run_stats,
    summary,
)
from seglib.report.tables import (
    INTERVAL_NOTE,
    PAIRED_NOTE,
    bold_best,
    grid_markdown,
    interval_table,
    table,
    versus_table,
)
from seglib.store import dataset_of, load_runs

METRICS = {"score": "course score", "iou": "IoU", "dice": "Dice"}


def original_table() -> str:
    """The ORIGINAL report's test table (course score), best in bold, same layout as ``table``."""
    text = bold_best(ORIGINAL_SCORES, {k: f"{v:.3f}" for k, v in ORIGINAL_SCORES.items()})
    nets = list(dict.fromkeys(n for n, _ in ORIGINAL_SCORES))
    losses = list(dict.fromkeys(lo for _, lo in ORIGINAL_SCORES))
    return grid_markdown(nets, losses, lambda n, lo: text[(n, lo)])


def compared_with_original(runs: list[dict]) -> bool:
    """Whether ``runs`` may be set beside the ORIGINAL report: only runs on PH2, as it was."""
    return dataset_of(runs) == "PH2"


def not_compared(runs: list[dict]) -> str:
    """Why runs on other data (e.g. synthetic) are not compared with the ORIGINAL report."""
    return (
        f"These runs are on {dataset_of(runs)}, not PH2: no comparison with the original "
        "report, which was on PH2."
    )


def comparison(runs: list[dict], digits: int = 3) -> str:
    """Per cell: our mean test course score, the original's, and ours minus original; for runs
    not on PH2, only :func:`not_compared`'s sentence."""
    if not compared_with_original(runs):
        return not_compared(runs)

    def cell(net, loss):
        ours = finished_values(cells(runs).get((net, loss), []), "score")
        orig = ORIGINAL_SCORES.get((net, loss))
        if not ours:
            return "–" if orig is None else f"– vs {orig:.{digits}f}"
        m = float(np.mean(ours))
        if orig is None:
            return f"{m:.{digits}f} vs –"
        return f"{m:.{digits}f} vs {orig:.{digits}f} ({m - orig:+.{digits}f})"

    return grid_markdown(nets_of(runs), losses_of(runs), cell)


def tta_table(runs: list[dict], digits: int = 3) -> str:
    """Per cell, mean over seeds: val IoU and test course score without -> with test-time
    augmentation (runs tested by an older seglib, without these numbers, are left out)."""
    done = [r for r in runs if (r.get("test") or {}).get("val")]

    def cell(net, loss):
        rs = cells(done).get((net, loss), [])
        if not rs:
            return "–"
        vals = [
            np.mean([r["test"]["val"]["plain"]["iou"] for r in rs]),
            np.mean([r["test"]["val"]["tta"]["iou"] for r in rs]),
            np.mean([r["test"]["plain"]["score"] for r in rs]),
            np.mean([r["test"]["score"] for r in rs]),
        ]
        v = [f"{x:.{digits}f}" for x in vals]
        return f"{v[0]} → {v[1]} / {v[2]} → {v[3]}"

    return grid_markdown(nets_of(runs), losses_of(runs), cell)


def details(runs: list[dict]) -> str:
    """Markdown table, one row per run with a history: the numbers behind ``summary``."""
    stats = [
        run_stats(r) for rs in cells([r for r in runs if r.get("history")]).values() for r in rs
    ]
    head = (
        "| run | epochs | best val score (epoch) | final val score | 95% score at | 95% IoU at "
        "| final train-val IoU | final train / val loss | spikes (deepest epoch: depth) | params "
        "| train min |\n" + "|---" * 11 + "|"
    )
    rows = []
    for s in stats:
        deep = max(s["spikes"], key=lambda t: t[1], default=None)
        spikes = f"{len(s['spikes'])} ({deep[0]}: {deep[1]:.2f})" if deep else "0"
        mins = "?" if s["seconds"] is None else f"{s['seconds'] / 60:.1f}"
        rows.append(
            f"| {s['label']} | {s['epochs']} | {s['best_val_score']:.3f} ({s['best_val_epoch']}) "
            f"| {s['final_val_score']:.3f} | {s['conv_score']} | {s['conv_iou']} "
            f"| {s['iou_gap']:+.3f} | {s['train_loss']:.3f} / {s['val_loss']:.3f} | {spikes} "
            f"| {params_text(s['params'])} | {mins} |"
        )
    return "\n".join([head, *rows])


def headline(runs: list[dict], readme: bool = False) -> str:
    """The short results section: course score and IoU with intervals, the original's table and
    ours vs the original. ``readme``: what ``report --readme`` writes into a README, without the
    title and with the summary's claims about test results (``summary.claims``) first."""
    dataset = dataset_of(runs)
    parts = [] if readme else [f"# Results on {dataset}", ""]
    if readme:
        parts += ["## In short", "", *claims(runs), ""]
    parts += [INTERVAL_NOTE, ""] if intervals(runs) else []
    for metric in ("score", "iou"):
        parts += [f"## Test {METRICS[metric]}", "", interval_table(runs, metric), ""]
    if compared_with_original(runs):  # the original report was on PH2: compare only there
        parts += [
            f"## ORIGINAL report's test course score ({ORIGINAL_EPOCHS} epochs, last epoch)",
            "",
            original_table(),
            "",
            "## Ours vs original (test course score, ours - original)",
            "",
            comparison(runs),
            "",
        ]
    else:
        parts += [not_compared(runs), ""]
    return "\n".join(parts)


def write_report(out, path) -> str:
    """Write the tables and summary of results folder ``out`` to markdown ``path``; return it."""
    runs = load_runs(out)
    parts = [headline(runs).rstrip("\n"), ""]
    parts += [
        "## Test Dice (mean ± sample std over seeds where several)",
        "",
        table(runs, "dice"),
        "",
    ]
    parts += ["## Paired comparisons", "", PAIRED_NOTE, ""]
    for metric in ("score", "iou"):
        parts += [
            f"### Each cell - the best cell (test {METRICS[metric]})",
            "",
            versus_table(runs, metric, "best"),
            "",
            f"### Each loss - BCE within each net (test {METRICS[metric]})",
            "",
            versus_table(runs, metric, "bce"),
            "",
        ]
    parts += [
        "## Summary",
        "",
        summary(runs),
        "",
    ]
    if any((r.get("test") or {}).get("val") for r in runs):
        parts += [
            "## Test-time augmentation (mean over the 8 flips/rotations; decided on val)",
            "",
            "Val IoU without → with TTA / test course score without → with TTA.",
            "",
            tta_table(runs),
            "",
        ]
    parts += [
        "## Per-run details",
        "",
        details(runs),
        "",
    ]
    text = "\n".join(parts)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return text


def _markers(name: str) -> tuple[str, str]:
    return (
        f"<!-- {name}:start (written by `python -m seglib report --readme`) -->",
        f"<!-- {name}:end -->",
    )


def update_readme(readme, text: str, command: str = "", section: str = "results") -> None:
    """Replace the README section between the ``section`` markers with ``text`` (headings
    demoted one level), so the README's numbers are always the report's, never typed by hand."""
    start, end = _markers(section)
    readme = Path(readme)
    old = readme.read_text(encoding="utf-8")
    if start not in old or end not in old:
        raise ValueError(f"{readme}: no {section} markers ({start} ... {end})")
    body = "\n".join("#" + line if line.startswith("#") else line for line in text.splitlines())
    if command:
        body = f"Reproduce: `{command}`\n\n{body}"
    head, rest = old.split(start, 1)
    tail = rest.split(end, 1)[1]
    readme.write_text(f"{head}{start}\n{body}\n{end}{tail}", encoding="utf-8")
