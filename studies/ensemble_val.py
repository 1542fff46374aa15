"""Clean IoU of an ensemble of model checkpoints: the members' logits averaged inside the net call,
then seglib's inference pipeline unchanged (``seglib.infer.predict.predict_mask``; deep ensembles:
Lakshminarayanan et al. 2017, "Simple and scalable predictive uncertainty estimation using deep
ensembles", arXiv:1612.01474). A screen for whether shipping several nets could pay, on val:

    python -m studies.ensemble_val results/shipped/mixed450/unet_correlation_s0/best.pt \\
        results/shipped/mixed250/unet_correlation_s0/best.pt --data PH2Dataset.tar.xz \\
        --json results/robustness/ensemble_mixed450_mixed250_clean_val.json

The members must share the training size and input normalisation (the same training images),
so one resized input serves all. Prints and writes the ensemble's and each member's mean IoU
(each member alone through the same code) on the split's images.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from seglib.data.imageio import read_rgb, read_truth
from seglib.infer.predict import load_model, predict_mask
from seglib.robustness.suite import checkpoint_cases, scores


class MeanLogits(torch.nn.Module):
    """The mean of its members' outputs."""

    def __init__(self, nets):
        super().__init__()
        self.nets = torch.nn.ModuleList(nets)

    def forward(self, x):
        return torch.stack([net(x) for net in self.nets]).mean(0)


def load_members(paths: list[Path]):
    """(MeanLogits, config of the first (a refit if any member is one), norm): ValueError when
    sizes or norms differ."""
    loaded = [load_model(p) for p in paths]
    _, cfg, norm = loaded[0]
    for p, (_, c, n) in zip(paths[1:], loaded[1:]):
        if c["size"] != cfg["size"] or not torch.equal(n, norm):
            raise ValueError(f"{p}: another training size or input normalisation than {paths[0]}")
    refit = any(c.get("refit") for _, c, _ in loaded)  # one member saw val: the ensemble did
    return MeanLogits([m for m, _, _ in loaded]).eval(), cfg | {"refit": refit}, norm


def mean_iou(model, cfg, norm, cases, pipeline: str) -> list[float]:
    out = []
    for _, image_path, mask_path in cases:
        image = read_rgb(image_path)
        pred = predict_mask(model, cfg, norm, image, pipeline=pipeline)
        out.append(scores(pred, read_truth(mask_path, image.shape[:2]))["iou"])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("weights", nargs="+", type=Path)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--split", default="val")
    ap.add_argument("--pipeline", default="robust")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    model, cfg, norm = load_members(a.weights)
    cases = checkpoint_cases(a.weights[0], cfg, a.data, a.split)
    t0 = time.perf_counter()
    rows = {"ensemble": mean_iou(model, cfg, norm, cases, a.pipeline)}
    for p, net in zip(a.weights, model.nets):
        rows[str(p)] = mean_iou(MeanLogits([net]).eval(), cfg, norm, cases, a.pipeline)
    res = {
        "weights": [str(p) for p in a.weights],
        "split": a.split,
        "pipeline": a.pipeline,
        "names": [c[0] for c in cases],
        "iou": {k: float(np.mean(v)) for k, v in rows.items()},
        "iou_per_image": rows,
        "seconds": time.perf_counter() - t0,
    }
    for k, v in res["iou"].items():
        print(f"{v:.4f}  {k}")
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
