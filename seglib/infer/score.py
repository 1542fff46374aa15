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
import io
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import stats

from seglib import metrics, store
from seglib.data import folder
from seglib.data.fetch import extract_cached, find_images_dir
from seglib.data.imageio import read_gray, read_rgb, truth_of, write_png
from seglib.data.overlay import draw_overlay
from seglib.data.ph2 import case_dirs, case_of, is_ph2, split_indices
from seglib.errors import FolderError, PH2Error
from seglib.infer import isic
from seglib.infer.options import InferenceOptions
from seglib.infer.predict import load_model, predict_mask, prefetch
from seglib.runtime import runtime

SPLITS = ("all", "train", "val", "test")
FAILED_IOU = 0.5
"""An image scored below this IoU counts as a failure in the summary (mostly the wrong region)."""
ISIC_COLUMNS = ("accuracy", "sensitivity", "specificity", "threshold_jaccard")
COLUMNS = ("name", "iou", "dice", "score", *ISIC_COLUMNS, "image", "mask")
LABELS = {"iou": "IoU", "dice": "Dice", "score": "course score", "accuracy": "accuracy",
          "sensitivity": "sensitivity", "specificity": "specificity",
          "threshold_jaccard": "Jaccard>=0.65"}  # fmt: skip
PH2_LAYOUT = "PH2 layout (PH2 Dataset images/IMDnnn/IMDnnn_Dermoscopic_Image/, IMDnnn_lesion/)"


def find_dataset(root: Path, partial: bool = False) -> tuple[str, list[folder.Pair], str]:
    """``(dataset name, pairs sorted by name, its layout in words)`` of a PH2 or paired-folder
    dataset (folder or archive; an archive is extracted once into the cache, as by
    ``load_dataset``). ``partial``: a case lacking its image or mask is a pair with a
    ``problem`` (:func:`seglib.data.folder.find_pairs`) instead of an error."""
    root = Path(root).expanduser()
    if not root.exists():
        raise PH2Error(f"{root}: not found (expected a dataset folder or archive); check the path")
    tree = extract_cached(root) if root.is_file() else root
    if is_ph2(tree):
        return "PH2", _ph2_pairs(find_images_dir(tree), partial), PH2_LAYOUT
    name = root.name.split(".")[0] if root.is_file() else root.resolve().name
    pairs = folder.find_pairs(tree, partial=partial)
    return name, pairs, "paired folder: " + folder.describe_layout(tree, pairs)


def _ph2_pairs(images_dir: Path, partial: bool) -> list[folder.Pair]:
    pairs = []
    for case in case_dirs(images_dir):
        try:
            pairs.append(folder.Pair(*case_of(case)))
        except PH2Error as e:
            if not partial:
                raise
            pairs.append(folder.Pair(case.name, None, None, str(e)))
    return pairs


def dataset_pairs(root: Path) -> tuple[str, list[folder.Pair]]:
    """``(dataset name, pairs sorted by name)``: :func:`find_dataset`, every pair complete."""
    name, pairs, _ = find_dataset(root)
    return name, pairs


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
    """The image with the expert's and the model's outlines and their legend
    (:func:`seglib.data.overlay.draw_overlay`)."""
    return Image.fromarray(draw_overlay(image, truth, pred))


def split_pairs(pairs: list[folder.Pair], split: str, cfg: dict) -> list[folder.Pair]:
    """The pairs of one split as the checkpoint's training saw it. A model trained on several
    datasets records each one's val and test case names: the dataset among them that shares
    the most names with ``pairs`` gives the split, so another copy of the data (the originals
    instead of a resized copy, with cases the copy lacked) is split the same way (its extra
    cases count as train). Otherwise the checkpoint's seed and fractions split ``pairs``."""
    names = {p.name for p in pairs}
    known = [d for d in cfg.get("datasets") or [] if "test_names" in d]
    best = max(known, key=lambda d: len(names & {*d["test_names"], *d["val_names"]}), default=None)
    if best is not None and names & {*best["test_names"], *best["val_names"]}:
        held = {"val": set(best["val_names"]), "test": set(best["test_names"])}
        if split == "train":
            return [p for p in pairs if p.name not in held["val"] | held["test"]]
        return [p for p in pairs if p.name in held[split]]
    parts = split_indices(len(pairs), cfg.get("split_seed", 0), cfg.get("split_fractions"))
    return [pairs[i] for i in parts[SPLITS.index(split) - 1]]


@dataclass(frozen=True)
class ScoreOutputs:
    """What :func:`score` writes beside its rows: each predicted mask to ``masks`` as
    ``<name>_mask.png`` (0/255, atomically, as ``predict`` writes it); overlays of the ``worst``
    images by IoU to ``overlays/<rank>_<name>.png``. None and 0: nothing."""

    masks: Path | None = None
    overlays: Path | None = None
    worst: int = 0


def score(
    weights: Path,
    data: Path,
    *,
    split: str = "all",
    options: InferenceOptions | None = None,
    outputs: ScoreOutputs | None = None,
    skipped: list[str] | None = None,
    log=None,
) -> tuple[str, list[dict]]:
    """Predict and score every image of ``data`` (or of one split of it: the checkpoint's
    ``split_seed`` and fractions, as in training); return ``(dataset name, rows)``, one row per
    image with the ``COLUMNS`` keys. ``options``: device, precision, test-time augmentation and
    pipeline (:class:`seglib.infer.options.InferenceOptions`; None: its defaults). ``outputs``:
    masks and worst-image overlays to write (:class:`ScoreOutputs`; None: none). Images and
    masks are read a few ahead in a background thread.

    Bad files: with a ``skipped`` list, a case whose image or mask is missing, unreadable or of
    another size is left out (no row, no mask) and its message (the file, what is wrong, what to
    do) appended to ``skipped``; without one, the first such case raises. ``log(line)`` is told
    the dataset's layout before scoring."""
    o, w = options or InferenceOptions(), outputs or ScoreOutputs()
    if split not in SPLITS:
        raise ValueError(f"--split {split}: choose from {', '.join(SPLITS)}")
    rt = runtime(o.device, o.precision)
    model, cfg, norm = load_model(weights, rt)
    source, pairs, layout = find_dataset(data, partial=skipped is not None)
    if split != "all":
        pairs = split_pairs(pairs, split, cfg)
    if log:
        log(f"{source}: {layout}; {len(pairs)} cases ({split})")
    predict = partial(predict_mask, model, cfg, norm, tta=o.tta, pipeline=o.pipeline, rt=rt)
    rows, keep = [], {}
    for p, loaded in prefetch(pairs, _read_pair):
        if (read := _read_or_skip(loaded, skipped)) is None:
            continue
        image, gray = read
        pred = predict(image)
        if w.masks is not None:
            write_png(Path(w.masks) / f"{p.name}_mask.png", pred.astype(np.uint8) * 255)
        rows.append(_row(p, pred, gray))
        if w.worst > 0 and w.overlays is not None:
            _keep_worst(keep, w.worst, rows[-1]["iou"], p)
    if w.overlays is not None and keep:
        _write_overlays(keep, Path(w.overlays), predict)
    return source, rows


def _read_or_skip(loaded, skipped: list[str] | None):
    """The (image, mask) a prefetched read gave; None, its message in ``skipped``, for a bad case."""
    try:
        return loaded.result()
    except PH2Error as e:
        if skipped is None:
            raise
        skipped.append(str(e))
        return None


def _keep_worst(keep: dict, worst: int, iou: float, p: folder.Pair) -> None:
    """Add ``p`` at ``iou`` to ``keep``, then drop the best so only the ``worst`` worst stay."""
    keep[p.name] = (iou, p)
    if len(keep) > worst:
        keep.pop(max(keep, key=lambda k: (keep[k][0], k)))


def _write_overlays(keep: dict, overlays: Path, predict) -> None:
    """An overlay of each kept image, worst first, at ``overlays/<rank>_<name>.png``."""
    for rank, name in enumerate(sorted(keep, key=lambda k: (keep[k][0], k)), 1):
        image, gray = _read_pair(keep[name][1])
        pred = predict(image)
        write_png(overlays / f"{rank:02d}_{name}.png", draw_overlay(image, truth_of(gray), pred))


def _row(p: folder.Pair, pred: np.ndarray, gray: np.ndarray) -> dict:
    """The ``COLUMNS`` of one image: its prediction ``pred`` scored against its mask ``gray``."""
    m = metrics.summarise(
        torch.from_numpy(pred)[None, None], torch.from_numpy(truth_of(gray))[None, None]
    )
    challenge = isic.image_metrics(pred, isic.binarise(gray))
    return {"name": p.name, **{k: _short(v[0]) for k, v in m.items()},
            **{k: challenge[k] for k in ISIC_COLUMNS},
            "image": shown_path(p.image), "mask": shown_path(p.mask)}  # fmt: skip


def shown_path(path: Path) -> str:
    """``path`` as the CSV names it: a file extracted from an archive into the cache by its
    path inside the archive (no machine path), any other file as given."""
    from seglib.data.cache import cache_dir

    try:
        inside = Path(path).resolve().relative_to((cache_dir() / "extracted").resolve())
    except ValueError:
        return str(path)
    return Path(*inside.parts[1:]).as_posix()  # without the extraction folder's key


def _read_pair(p: folder.Pair) -> tuple[np.ndarray, np.ndarray]:
    """(image (H,W,3) uint8 at full resolution, expert mask (H,W) 8-bit grey) of a pair;
    FolderError with the pair's ``problem`` when it lacks a file."""
    if p.problem:
        raise FolderError(p.problem)
    image = read_rgb(p.image)
    return image, read_gray(p.mask, image.shape[:2])


def write_csv(rows: list[dict], path: Path) -> None:
    """One row per image (``COLUMNS``), floats in full precision (``repr``); written atomically
    (temp file + rename)."""
    text = io.StringIO(newline="")
    w = csv.DictWriter(text, fieldnames=COLUMNS)
    w.writeheader()
    w.writerows({k: repr(v) if isinstance(v, float) else v for k, v in r.items()} for r in rows)
    data = text.getvalue().encode("utf-8")
    store.atomic_write(Path(path), lambda f: f.write(data))


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
    low_iou = sum(r["iou"] < FAILED_IOU for r in rows)
    lines.append(f"  images with IoU below {FAILED_IOU}: {low_iou} of {len(rows)} "
                 f"({100 * low_iou / max(len(rows), 1):.1f}%)")  # fmt: skip
    lines.append("  (95% CI of the mean: Student t interval, scipy.stats.t)")
    return lines
