"""Score a checkpoint on any labelled dataset (PH2 or a paired folder) at full resolution.

Every image is predicted by ``predict.predict_mask``, the code behind ``python -m seglib
predict`` (same resizing, test-time augmentation and threshold), and compared with its expert
mask at the image's own resolution: per-image IoU, Dice and course score (``seglib.metrics``),
and the ISIC challenge's accuracy, sensitivity, specificity and thresholded Jaccard, defined as
its official scorer defines them (:mod:`seglib.infer.isic`: masks binarised at > 128).
The means get a 95% confidence interval from Student's t distribution
(``scipy.stats.t.interval`` with the standard error ``scipy.stats.sem``): the interval of a mean
of independent per-image values, deterministic, and close to a bootstrap one at these sizes.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import stats

from seglib import metrics
from seglib.data import folder
from seglib.data.fetch import extract_cached, find_images_dir
from seglib.data.imageio import outline, read_gray, read_rgb, tint, truth_of, write_png
from seglib.data.ph2 import case_files, is_ph2, split_indices
from seglib.errors import PH2Error
from seglib.infer import isic
from seglib.infer.predict import load_model, predict_mask, prefetch
from seglib.runtime import runtime

SPLITS = ("all", "train", "val", "test")
ISIC_COLUMNS = ("accuracy", "sensitivity", "specificity", "threshold_jaccard")
COLUMNS = ("name", "iou", "dice", "score", *ISIC_COLUMNS, "image", "mask")
LABELS = {"iou": "IoU", "dice": "Dice", "score": "course score", "accuracy": "accuracy",
          "sensitivity": "sensitivity", "specificity": "specificity",
          "threshold_jaccard": "Jaccard>=0.65"}  # fmt: skip
TRUTH_RGB = (255, 230, 0)
PRED_RGB = (0, 191, 255)


def dataset_pairs(root: Path) -> tuple[str, list[folder.Pair]]:
    """``(dataset name, pairs sorted by name)`` of a PH2 or paired-folder dataset (folder or
    archive; an archive is extracted once into the cache, as by ``load_dataset``)."""
    root = Path(root).expanduser()
    if not root.exists():
        raise PH2Error(f"{root}: not found (expected a dataset folder or archive)")
    tree = extract_cached(root) if root.is_file() else root
    if is_ph2(tree):
        return "PH2", [folder.Pair(*c) for c in case_files(find_images_dir(tree))]
    name = root.name.split(".")[0] if root.is_file() else root.resolve().name
    return name, folder.find_pairs(tree)


def _short(value) -> float:
    """A float32 metric as the shortest decimal that reads back as the same float32 (0.6, not
    0.6000000238418579), so the CSV shows what was computed and nothing more."""
    return float(str(np.float32(value)))


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: Student-t confidence interval of the mean, clipped to [0, 1] (the
    metrics' range); ``low = high = mean`` when all values are equal, NaN bounds for fewer than
    two values."""
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    if x.size < 2:
        return mean, float("nan"), float("nan")
    sem = float(stats.sem(x))
    if sem == 0:
        return mean, mean, mean
    low, high = stats.t.interval(level, x.size - 1, loc=mean, scale=sem)
    return mean, max(0.0, float(low)), min(1.0, float(high))


def _overlay(image: np.ndarray, pred: np.ndarray, truth: np.ndarray) -> Image.Image:
    """The image with the prediction tinted blue and the expert mask's outline in yellow."""
    out = tint(image.astype(np.float32), pred, PRED_RGB, 0.45)
    out[outline(truth, width=max(1, max(truth.shape) // 300))] = TRUTH_RGB
    return Image.fromarray(out.astype(np.uint8))


def score(
    weights: Path,
    data: Path,
    *,
    split: str = "all",
    device: str = "cpu",
    tta: bool = True,
    overlays: Path | None = None,
    worst: int = 0,
    pipeline: str | None = None,
    precision: str = "auto",
    masks: Path | None = None,
) -> tuple[str, list[dict]]:
    """Predict and score every image of ``data`` (or of one split of it: the checkpoint's
    ``split_seed`` and fractions, as in training); return ``(dataset name, rows)``, one row per
    image with the ``COLUMNS`` keys. With ``overlays`` and ``worst``, write overlays of the
    ``worst`` images by IoU to ``overlays/<rank>_<name>.png``. ``pipeline``: as in
    :func:`seglib.infer.predict.predict_mask` (default: the checkpoint's); ``precision``: as in
    training (:func:`seglib.runtime.runtime`). With ``masks``, each predicted mask is written
    there as ``<name>_mask.png`` (0/255), as ``predict`` writes it. Images and masks are read a
    few ahead in a background thread."""
    if split not in SPLITS:
        raise ValueError(f"--split {split}: choose from {', '.join(SPLITS)}")
    rt = runtime(device, precision)
    model, cfg, norm = load_model(weights, rt)
    source, pairs = dataset_pairs(data)
    if split != "all":
        parts = split_indices(len(pairs), cfg.get("split_seed", 0), cfg.get("split_fractions"))
        pairs = [pairs[i] for i in parts[SPLITS.index(split) - 1]]
    rows, keep = [], {}
    for p, loaded in prefetch(pairs, _read_pair):
        image, gray = loaded.result()
        pred = predict_mask(model, cfg, norm, image, tta=tta, pipeline=pipeline, rt=rt)
        if masks is not None:
            write_png(Path(masks) / f"{p.name}_mask.png", pred.astype(np.uint8) * 255)
        m = metrics.summarise(
            torch.from_numpy(pred)[None, None], torch.from_numpy(truth_of(gray))[None, None]
        )
        challenge = isic.image_metrics(pred, isic.binarise(gray))
        rows.append({"name": p.name, **{k: _short(v[0]) for k, v in m.items()},
                     **{k: challenge[k] for k in ISIC_COLUMNS},
                     "image": str(p.image), "mask": str(p.mask)})  # fmt: skip
        if worst > 0 and overlays is not None:
            keep[p.name] = (rows[-1]["iou"], p)
            if len(keep) > worst:  # keep only the worst ``worst`` so far
                keep.pop(max(keep, key=lambda k: (keep[k][0], k)))
    if overlays is not None and keep:
        Path(overlays).mkdir(parents=True, exist_ok=True)
        for rank, name in enumerate(sorted(keep, key=lambda k: (keep[k][0], k)), 1):
            image, gray = _read_pair(keep[name][1])
            pred = predict_mask(model, cfg, norm, image, tta=tta, pipeline=pipeline, rt=rt)
            _overlay(image, pred, truth_of(gray)).save(Path(overlays) / f"{rank:02d}_{name}.png")
    return source, rows


def _read_pair(p: folder.Pair) -> tuple[np.ndarray, np.ndarray]:
    """(image (H,W,3) uint8 at full resolution, expert mask (H,W) 8-bit grey) of a pair."""
    image = read_rgb(p.image)
    return image, read_gray(p.mask, image.shape[:2])


def write_csv(rows: list[dict], path: Path) -> None:
    """One row per image (``COLUMNS``), floats in full precision (``repr``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows({k: repr(v) if isinstance(v, float) else v for k, v in r.items()} for r in rows)


def summary_lines(source: str, rows: list[dict], split: str, tta: bool) -> list[str]:
    """The on-screen summary: what was scored, then each mean with its 95% interval."""
    lines = [
        f"{source}: {len(rows)} images ({split}), test-time augmentation {'on' if tta else 'off'}"
    ]
    for key, label in LABELS.items():
        if key in ISIC_COLUMNS[:1]:
            lines.append("  ISIC challenge metrics (official scorer's definitions):")
        mean, low, high = mean_ci([r[key] for r in rows])
        lines.append(f"  {label:<17} {mean:.3f}  95% CI {low:.3f}-{high:.3f}")
    lines.append("  (95% CI of the mean: Student t interval, scipy.stats.t)")
    return lines
