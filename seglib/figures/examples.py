"""Prediction examples: for each net, its best run's checkpoint on a few test images."""

from __future__ import annotations

from pathlib import Path

import torch

from seglib import store
from seglib.augment.tta import tta_logits
from seglib.data import colour
from seglib.data.ph2 import split_indices
from seglib.data.synth import is_synthetic
from seglib.figures.predictions import plot_predictions
from seglib.figures.style import save, tag_data
from seglib.infer.predict import load_model
from seglib.runtime import runtime


def write_predictions(
    out: Path, diag: Path, n: int = 4, device: str = "cpu", show=None
) -> list[Path]:
    """Write ``diag/predictions_<net>.svg``: the first ``n`` test images with the truth and the
    prediction of each loss's run for that net (lowest seed's best checkpoints; with test-time
    augmentation where the run was tested with it). Runs whose ``best.pt``
    or dataset is not available (e.g. committed results without checkpoints) are skipped.
    ``show``: called with each figure before it is closed (the notebook shows it inline)."""
    from seglib.data.ph2 import resolve_data

    device = str(runtime(device).device)
    runs = [r for r in store.load_runs(out) if r["test"] and (r["dir"] / "best.pt").exists()]
    seed = min((r["config"].get("seed", 0) for r in runs), default=0)
    by_net: dict[str, list[dict]] = {}
    for r in runs:
        if r["config"].get("seed", 0) == seed:
            by_net.setdefault(r["config"]["net"], []).append(r)
    written, cache = [], {}
    for net, group in sorted(by_net.items()):
        cfg = group[0]["config"]
        key = (cfg["data"], cfg["size"])
        try:
            if key not in cache:
                cache[key] = resolve_data(cfg["data"], cfg["size"], quiet=True)
        except (OSError, ValueError) as e:
            print(f"predictions: skipped {net} ({e})")
            continue
        data = cache[key]
        test = torch.as_tensor(
            split_indices(len(data), cfg["split_seed"], cfg.get("split_fractions"))[2][:n]
        )
        images, masks = data.images[test], data.masks[test]
        preds = {}
        for r in group:
            model, rcfg, norm = load_model(r["dir"] / "best.pt", device)
            with torch.inference_mode():
                x = colour.correct(images.float().div(255).to(device), colour.of(rcfg))
                maps = 8 if r["test"].get("tta") else 1
                logits = tta_logits(model, (x - norm[0]) / norm[1], maps=maps)
                preds[f"{net}+{rcfg['loss']}"] = (logits > 0).cpu()
        path = Path(diag) / f"predictions_{net}.svg"
        fig = plot_predictions(images, masks, preds, titles=case_titles(data, test.tolist()))
        save(tag_data(fig, data.source), path)
        if show is not None:
            show(fig)
        written.append(path)
    return written


def case_titles(data, idx: list[int]) -> list[str]:
    """Row names of a prediction figure: the case names, marked "(synthetic)" for generated
    data, so a synthetic "IMD008" never passes for a PH2 case."""
    from seglib.data.multi import part_of

    return [
        data.names[i] + (" (synthetic)" if is_synthetic(part) else "")
        for i, part in zip(idx, part_of(data, idx))
    ]
