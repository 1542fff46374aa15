"""What the robust pipeline's one-region step (seglib.infer.postprocess, step 3) chooses between: for each
named image under an artefact, every connected region of the first pass (exposure step and
input sizes of ``robust``, TTA) with its share of the frame, its weight by the rule, share of the
true lesion it covers and its mean / max probability, and which one the step keeps (by
``--rule``, default the robust pipeline's).

    python -m studies.component_probe CKPT --data PH2Dataset.tar.xz --split val \\
        --kind small_lesion --below 0.1 --suite results/robustness/w24_192_mixed400_robust_val.json \\
        --rule centre

``--below`` picks the images whose IoU under ``--kind`` in a robustness ``--suite`` JSON is under
it. Exploratory, on val: nothing is chosen with it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from scipy import special

from seglib.data.imageio import read_rgb, read_truth
from seglib.infer import postprocess as P
from seglib.infer.predict import first_pass, load_model
from seglib.robustness import artefacts
from seglib.robustness.suite import checkpoint_cases, rng_for


def regions(logits: np.ndarray, truth: np.ndarray, rule: str) -> list[dict]:
    """One dict per 8-connected region of ``logits > 0``, largest ``rule`` weight first."""
    labels, n = P.label(logits > 0)
    weight = P.component_weight(logits, rule)
    out = []
    for i in range(1, n + 1):
        r = labels == i
        p = special.expit(logits[r])
        out.append({
            "frame": float(r.mean()),
            "weight": float(r.sum() if weight is None else weight[r].sum()),
            "covers_lesion": float((r & truth).sum() / max(truth.sum(), 1)),
            "mean_p": float(p.mean()),
            "max_p": float(p.max()),
        })  # fmt: skip
    return sorted(out, key=lambda d: -d["weight"])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("weights")
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="val", choices=("val", "test"))
    ap.add_argument("--kind", default="small_lesion")
    ap.add_argument("--suite", required=True, help="robustness JSON of this checkpoint")
    ap.add_argument("--below", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rule", choices=P.RULES,
                    help="component rule to rank by (default: the robust pipeline's)")  # fmt: skip
    a = ap.parse_args(argv)
    suite = json.loads(Path(a.suite).read_text())
    row = next(r for r in suite["rows"] if r["kind"] == a.kind)
    names = {n for n, v in zip(suite["names"], row["iou_per_image"]) if v < a.below}
    model, cfg, norm = load_model(Path(a.weights))
    p = P.PIPELINES["robust"]
    rule = a.rule or p.component
    with torch.inference_mode():
        for name, image_path, mask_path in checkpoint_cases(
            Path(a.weights), cfg, Path(a.data), a.split
        ):
            if name not in names:
                continue
            image = read_rgb(image_path)
            truth = read_truth(mask_path, image.shape[:2])
            image, truth = artefacts.apply(a.kind, image, truth, rng_for(a.seed, a.kind, name))
            _, logits = first_pass(model, cfg, norm, image, p)
            print(
                name,
                f"lesion {truth.mean():.4f} of the frame; regions, kept first ({rule}):",
            )
            for r in regions(logits, truth, rule):
                print("  " + ", ".join(f"{k} {v:.3f}" for k, v in r.items()))


if __name__ == "__main__":
    main()
