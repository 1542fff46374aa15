"""Choose, per (net, loss) cell, between two finished grids by best val IoU (never test).

    python -m studies.choose_on_val results/ablation/wd1e-4 results/ablation/wd0 [--copy-to results/cpu]

Prints a markdown table (best val IoU of A / of B, the winner; B must beat A to win) and the
cells where B wins; ``--copy-to`` copies each cell's winning run folder into that folder.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from seglib import store
from seglib.report.analysis import cells, display, losses_of, nets_of
from seglib.report.tables import grid_markdown


def best_val(run: dict) -> float:
    return max(row["val_iou"] for row in run["history"])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.add_argument("--copy-to", type=Path)
    args = p.parse_args(argv)
    ga, gb = (cells([r for r in store.load_runs(x) if r["test"]]) for x in (args.a, args.b))
    runs = [r for g in ga.values() for r in g]
    nets, losses = nets_of(runs), losses_of(runs)
    wins, src = [], {}
    for n in nets:
        for lo in losses:
            a, b = ga[(n, lo)][0], gb.get((n, lo), [None])[0]
            if b is None:
                p.error(f"{args.b}: no finished {n}+{lo} run")  # "error: ...", exit 2
            va, vb = best_val(a), best_val(b)
            win = vb > va
            if win:
                wins.append((n, lo))
            src[(n, lo)] = (
                f"{va:.3f} / {vb:.3f} → {'B' if win else 'A'}",
                (b if win else a)["dir"],
            )
            if args.copy_to:
                shutil.copytree(src[(n, lo)][1], args.copy_to / src[(n, lo)][1].name)
    print(f"Best val IoU, A = {args.a} / B = {args.b}:\n")
    print(grid_markdown(nets, losses, lambda n, lo: src[(n, lo)][0]))
    print(f"\nB wins: {', '.join(f'{display(n)}+{display(lo)}' for n, lo in wins) or 'none'}")
    print(f"cells: {tuple(wins)}")


if __name__ == "__main__":
    main()
