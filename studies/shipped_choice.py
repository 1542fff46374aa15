"""Choose the shipped model among finished candidates on the val images of each archive.

    python -m studies.shipped_choice BASE.pt CAND.pt [CAND.pt ...] \\
        --data PH2Dataset.tar.xz,ISIC2018-Task1-512.tar --out results/shipped/choice/NAME.json

Each checkpoint is scored (``seglib.infer.score.score``: full resolution, test-time
augmentation, the plain pipeline unless ``--pipeline``) on the val portion of each dataset, by
the split the checkpoint trained with; never on test. Prints, per candidate, the val IoU of each
dataset with its interval, their mean (the number that chooses: each archive counts the same),
and its paired difference from BASE on every val image together (mean, 95% interval,
permutation p: :func:`seglib.report.stats.paired`). A candidate replaces BASE only if its mean
is higher; the JSON keeps the per-image IoUs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from seglib import store
from seglib.infer.options import InferenceOptions
from seglib.infer.score import score
from seglib.report.stats import mean_interval, paired


def val_ious(weights: Path, datasets: list[str], options: InferenceOptions) -> dict:
    """Dataset name -> {image name: val IoU} of the checkpoint ``weights``."""
    out = {}
    for data in datasets:
        name, rows = score(weights, Path(data), split="val", options=options)
        out[name] = {r["name"]: float(r["iou"]) for r in rows}
    return out


def summary(label: str, ious: dict, base: dict | None) -> str:
    """One markdown row: each dataset's val IoU [interval], the mean, the paired difference."""
    cells = []
    for name in ious:
        ci = mean_interval(list(ious[name].values()))
        cells.append(f"{ci.mean:.3f} [{ci.low:.3f}, {ci.high:.3f}]")
    mean = np.mean([np.mean(list(v.values())) for v in ious.values()])
    if base is None:
        versus = "(base)"
    else:
        keys = [(d, k) for d in base for k in base[d]]
        c = paired([ious[d][k] for d, k in keys], [base[d][k] for d, k in keys])
        versus = f"{c.diff:+.3f} [{c.low:+.3f}, {c.high:+.3f}], p = {c.p:.2g}"
    return f"| {label} | {' | '.join(cells)} | {mean:.3f} | {versus} |"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("weights", type=Path, nargs="+", help="BASE first, then the candidates")
    p.add_argument("--data", required=True, help="datasets, separated by commas")
    p.add_argument("--pipeline", default="plain")
    p.add_argument("--out", type=Path, help="JSON of every per-image val IoU")
    a = p.parse_args(argv)
    options = InferenceOptions(pipeline=a.pipeline)
    found = {str(w): val_ious(w, a.data.split(","), options) for w in a.weights}
    names = list(next(iter(found.values())))
    print(f"| candidate | {' | '.join(f'{n} val IoU' for n in names)} | mean | vs base |")
    print("|---|" + "---|" * (len(names) + 2))
    base = None
    for label, ious in found.items():
        print(summary(label, ious, base))
        base = base or ious
    if a.out:
        store.write_json(a.out, {"pipeline": a.pipeline, "val_iou": found})


if __name__ == "__main__":
    main()
