"""Predict lesion masks for new images with a checkpoint (a run's ``best.pt`` or ``weights/``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import models
from .fetch import PH2Error
from .tta import tta_logits

DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "best.pt"


def load_model(weights: Path, device: str = "cpu") -> tuple[torch.nn.Module, dict, torch.Tensor]:
    """(model in eval mode, config dict, norm (2,1,3,1,1)) from a checkpoint file."""
    weights = Path(weights)
    if not weights.is_file():
        raise FileNotFoundError(
            f"{weights}: no such checkpoint (train with `python -m seglib run`)"
        )
    ckpt = torch.load(weights, map_location=device, weights_only=False)
    cfg = ckpt["config"]
    model = models.build(cfg["net"], width=cfg["width"], depth=cfg["depth"])
    model.load_state_dict({k: v.float() for k, v in ckpt["model"].items()})
    return model.to(device).eval(), cfg, ckpt["norm"].float().to(device)


def read_rgb(path: Path) -> np.ndarray:
    """An image file as an (H,W,3) uint8 array, with a clear error for unreadable files."""
    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))
    except (OSError, ValueError) as e:
        raise PH2Error(f"{path}: cannot read image ({e})") from e


@torch.inference_mode()
def predict_mask(
    model, cfg: dict, norm: torch.Tensor, image: np.ndarray, tta: bool = True
) -> np.ndarray:
    """Binary (H,W) bool mask at the image's own resolution: resize to the training size,
    predict logits (averaged over the 8 flips/rotations if ``tta``), resize the logits back
    bilinearly, threshold at 0 (probability 0.5)."""
    device = norm.device
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255).to(device)
    size = cfg["size"]
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    x = (x - norm[0]) / norm[1]
    logits = tta_logits(model, x) if tta else model(x)
    logits = F.interpolate(logits.float(), size=image.shape[:2], mode="bilinear")
    return (logits[0, 0] > 0).cpu().numpy()


def predict_files(
    weights: Path, images: list[Path], out: Path, device: str = "cpu", tta: bool = True
) -> list[Path]:
    """Write ``<out>/<stem>_mask.png`` (0/255, the input's resolution) for every image."""
    model, cfg, norm = load_model(weights, device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in map(Path, images):
        mask = predict_mask(model, cfg, norm, read_rgb(path), tta=tta)
        dest = out / f"{path.stem}_mask.png"
        Image.fromarray(mask.astype(np.uint8) * 255).save(dest)
        written.append(dest)
    return written


def export_weights(results: Path, dest: Path = DEFAULT_WEIGHTS) -> Path:
    """Copy the best run's checkpoint (highest best val IoU: chosen on val, never on test) to
    ``dest`` in fp16, with its config beside it as ``<dest>.json``; return the run folder."""
    from . import store

    runs = [r for r in store.load_runs(results) if r["test"] and (r["dir"] / "best.pt").exists()]
    if not runs:
        raise FileNotFoundError(f"{results}: no finished run with a best.pt checkpoint")
    best = max(runs, key=lambda r: max(h["val_iou"] for h in r["history"]))
    ckpt = torch.load(best["dir"] / "best.pt", map_location="cpu", weights_only=False)
    ckpt["model"] = {k: v.half() if v.is_floating_point() else v for k, v in ckpt["model"].items()}
    store.save_torch(dest, ckpt)
    store.write_json(Path(dest).with_suffix(".json"), {"run": best["name"], **ckpt["config"]})
    return best["dir"]
