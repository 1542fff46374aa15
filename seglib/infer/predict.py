"""Predict lesion masks for new images with a checkpoint (a run's ``best.pt`` or ``weights/``).

The net runs as training does (:mod:`seglib.runtime`): the runtime's precision (bf16 autocast
where the CPU has native bf16 or the GPU has compute capability 8.0+, ``--precision`` to
override), channels-last, and the 8 test-time views of an input in one batch
(:func:`seglib.augment.tta.tta_logits`). Files are decoded ahead in a thread (:func:`prefetch`) and
masks written in another while the net runs. ``predict``, ``score`` and ``robustness`` all
predict through :func:`predict_mask`.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

from seglib.augment.tta import tta_logits
from seglib.data import colour
from seglib.data.imageio import draw_outline, read_image, upsample_mask, write_png
from seglib.engine import checkpoint
from seglib.errors import PH2Error, SomeFilesFailed
from seglib.infer import postprocess as pipe
from seglib.infer.options import InferenceOptions
from seglib.runtime import Runtime, runtime


def _shipped_weights() -> Path:
    """The shipped checkpoint: inside the installed package (the wheel carries it as
    ``seglib/weights/best.pt``), else the source checkout's ``weights/best.pt``."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "weights" / "best.pt"
    return installed if installed.is_file() else package.parent / "weights" / "best.pt"


DEFAULT_WEIGHTS = _shipped_weights()


def load_model(
    weights: Path, device: str | Runtime = "cpu"
) -> tuple[torch.nn.Module, dict, torch.Tensor]:
    """(model in eval mode, config dict, norm (2,1,3,1,1)) from a checkpoint file, loaded safely
    (:func:`seglib.engine.checkpoint.load_checkpoint`: a crafted file cannot run code).
    ``device``: a device name, or a :class:`~seglib.runtime.Runtime` to predict in: its device
    and memory format, the batch norms folded into the convolutions (:func:`fold_batchnorm`)."""
    rt = device if isinstance(device, Runtime) else None
    device = rt.device if rt else device
    weights = Path(weights)
    if not weights.is_file():
        raise FileNotFoundError(
            f"{weights}: no such checkpoint (train with `python -m seglib run`)"
        )
    ckpt = checkpoint.load_checkpoint(weights, "model")
    model = checkpoint.build_model(ckpt, weights).to(device)
    model = rt.format(fold_batchnorm(model)) if rt else model
    cfg = ckpt["config"] | ({"datasets": ckpt["datasets"]} if "datasets" in ckpt else {})
    return model, cfg, ckpt["norm"].float().to(device)


def fold_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` (eval mode) with each ``BatchNorm2d`` that follows a ``Conv2d`` in a
    ``Sequential`` folded into the convolution's weights and bias (``fuse_conv_bn_eval``) and
    replaced by ``Identity``: the same function up to float rounding (about 1e-5 of the shipped
    net's logits), one pass over each activation fewer (10-18% of a forward of the shipped net
    on a 2-core CPU). In place; returns ``model``."""
    for seq in model.modules():
        if not isinstance(seq, torch.nn.Sequential):
            continue
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if type(conv) is torch.nn.Conv2d and type(bn) is torch.nn.BatchNorm2d:
                seq[i], seq[i + 1] = fuse_conv_bn_eval(conv, bn), torch.nn.Identity()
    return model


def as_given(norm: torch.Tensor) -> Runtime:
    """The runtime of a model used as it is: fp32 on ``norm``'s device, no change of memory
    format (what :func:`predict_mask` assumes when no runtime is passed)."""
    return Runtime(norm.device, "fp32", channels_last=False)


def _net_logits(
    model, norm: torch.Tensor, image: np.ndarray, side: int, tta: bool, rt: Runtime, col: str
) -> torch.Tensor:
    """(side, side) logits of ``image`` (h,w,3 uint8) resized to a ``side`` square and colour
    corrected by ``col`` as training was (:mod:`seglib.data.colour`, on the resized input), the
    net run in ``rt``'s precision and memory format (the TTA views batched)."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div(255)
    x = F.interpolate(x.to(norm.device), size=(side, side), mode="bilinear", antialias=True,
                      align_corners=False)  # fmt: skip
    x = rt.format((colour.correct(x, col) - norm[0]) / norm[1])
    with rt.autocast():
        y = tta_logits(model, x, batch=rt.infer_batch) if tta else model(x)
    return y[0, 0].float().cpu()


def _frame_logits(model, norm, image, sides: list[int], tta: bool, rt: Runtime, col: str):
    """Mean logits of ``image`` over inputs of each of ``sides``, at the image's own resolution
    (bilinear from each square); ``col``: as in :func:`_net_logits`. The sides are separate forwards: a fully convolutional net
    would see the smaller input zero-padded in a shared batch (other logits), at 2.25x its
    cost at the shipped 192 and 288 px."""
    total = 0
    for side in sides:
        small = _net_logits(model, norm, image, side, tta, rt, col)[None, None]
        total = total + F.interpolate(small, size=image.shape[:2], mode="bilinear",
                                      align_corners=False)  # fmt: skip
    return (total / len(sides))[0, 0].numpy()


def first_pass(model, cfg, norm, image, p: pipe.Pipeline, tta: bool = True, rt=None):
    """(image after the exposure step, its mean logits over ``p``'s input sizes at the image's
    resolution): steps 1-2 of a non-plain pipeline, before the one-region step. ``rt``: as in
    :func:`predict_mask`."""
    rt = rt or as_given(norm)
    if p.exposure:
        target = float(norm[0].flatten().cpu().numpy() @ pipe.LUMA) * 255
        image = pipe.apply_gain(image, pipe.exposure_gain(image, target, p.exposure_band))
    sides = pipe.input_sides(cfg["size"], p)
    return image, _frame_logits(model, norm, image, sides, tta, rt, colour.of(cfg))


@torch.inference_mode()
def predict_mask(
    model,
    cfg: dict,
    norm: torch.Tensor,
    image: np.ndarray,
    tta: bool = True,
    out_size: tuple[int, int] | None = None,
    pipeline: str | pipe.Pipeline | None = None,
    rt: Runtime | None = None,
) -> np.ndarray:
    """Binary (H,W) bool mask of ``image`` at ``out_size`` (default: the image's own size).

    ``pipeline`` (:mod:`seglib.infer.postprocess`; default: the checkpoint's, else plain): plain resizes
    the image to the training size, predicts logits (averaged over the 8 flips/rotations if
    ``tta``), resizes them bilinearly to ``out_size`` and thresholds at 0 (probability 0.5);
    robust adds exposure normalisation, several input sizes, one connected component
    (:mod:`seglib.infer.postprocess`, step 3) and zoom-in refinement of small lesions.

    ``rt``: the :class:`~seglib.runtime.Runtime` the model was loaded for (``load_model(weights,
    rt)``): its precision, memory format and views per forward; default :func:`as_given`."""
    rt = rt or as_given(norm)
    p = pipe.resolve(pipeline, cfg)
    out_size = tuple(out_size or image.shape[:2])
    sides = pipe.input_sides(cfg["size"], p)
    if p == pipe.PIPELINES["plain"]:
        logits = _net_logits(model, norm, image, sides[0], tta, rt, colour.of(cfg))
        return upsample_mask(logits.numpy(), out_size)
    image, logits = first_pass(model, cfg, norm, image, p, tta, rt)
    weight = pipe.component_weight(logits, p.component) if p.largest else None
    mask = logits > 0
    if p.largest:
        mask = pipe.largest_component(mask, weight)
    region = pipe.seed_region(logits, mask, p.seed_prob) if p.zoom > 0 else None
    window = region is not None and pipe.zoom_window(region, p.zoom, p.zoom_max, p.zoom_min)
    if window:
        top, left, h, w = window
        crop = image[top : top + h, left : left + w]
        crop = _frame_logits(model, norm, crop, sides, tta, rt, colour.of(cfg))
        logits = np.full(logits.shape, -1e4, np.float32)  # the lesion is inside the window
        logits[top : top + h, left : left + w] = crop
        weight = pipe.component_weight(logits, p.component) if p.largest else None
    if not window and out_size == logits.shape:
        return mask  # the coarse mask is the answer (its component already chosen)
    mask = upsample_mask(logits, out_size) if out_size != logits.shape else logits > 0
    if not p.largest:
        return mask
    if weight is not None and weight.shape != out_size:
        weight = F.interpolate(torch.from_numpy(weight)[None, None], size=out_size,
                               mode="bilinear", align_corners=False)[0, 0].numpy()  # fmt: skip
    return pipe.largest_component(mask, weight)


def prefetch(items, load, ahead: int = 2):
    """Yield ``(item, future of load(item))`` in order, ``load`` running in a background thread
    up to ``ahead`` items in front of the consumer (image decoding overlaps the net; PIL and
    numpy release the GIL). ``future.result()`` returns the value or raises ``load``'s error.
    Leaving the loop early drops the loads not started."""
    pending: deque[tuple[object, Future]] = deque()
    items = iter(items)
    with ThreadPoolExecutor(1, thread_name_prefix="seglib-read") as pool:
        try:
            for item in items:
                pending.append((item, pool.submit(load, item)))
                if len(pending) > ahead:
                    yield pending.popleft()
            while pending:
                yield pending.popleft()
        finally:
            for _, fut in pending:
                fut.cancel()


class PredictFailed(SomeFilesFailed):
    """Some inputs could not be read; the others were written. ``written``: their masks."""

    def __init__(self, bad: list[str], total: int, written: list[Path]):
        self.written = written
        super().__init__("images not predicted", bad, total)


def _check_outputs(images: list[Path], out: Path) -> None:
    """Refuse before any work: an output folder that is a file, two inputs with one mask name."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder (--out must be a folder)")
    seen: dict[str, Path] = {}
    for path in images:
        if path.stem in seen and seen[path.stem] != path:
            raise ValueError(
                f"{path}: same name as {seen[path.stem]}; both would write "
                f"{out / (path.stem + '_mask.png')} (predict them into separate --out folders)"
            )
        seen[path.stem] = path


def predict_files(
    weights: Path,
    images: list[Path],
    out: Path,
    options: InferenceOptions | None = None,
    overlay: bool = False,
    on_written=None,
    rt: Runtime | None = None,
) -> list[Path]:
    """Write ``<out>/<stem>_mask.png`` (0/255, the upright input's resolution) for every image,
    and ``<stem>_overlay.png`` (the image with the mask outline) if ``overlay``.

    Bad input policy: the weights and the output names are checked before anything is written;
    then every readable image is processed, each file written atomically (temp file + rename),
    and the unreadable ones are reported together at the end (:class:`PredictFailed`, exit 1);
    ``out`` is made with the first mask, so no empty folder is left when every image is bad.
    ``on_written(path)`` is called after each file is written. ``options``: device, precision,
    test-time augmentation and pipeline (:class:`seglib.infer.options.InferenceOptions`; None:
    its defaults), or ``rt``: a runtime to use instead of the device and precision (the
    benchmark's variants). The next images are decoded, and each mask written, in background
    threads while the net runs."""
    o = options or InferenceOptions()
    images = [Path(p) for p in images]
    out = Path(out)
    _check_outputs(images, out)
    rt = rt or runtime(o.device, o.precision)
    model, cfg, norm = load_model(weights, rt)
    pipe.resolve(o.pipeline, cfg)  # an unknown name fails before anything is written
    written, bad = [], []

    def done(job: Future) -> None:  # in order, in this thread; a failed write raises here
        for d in job.result():
            written.append(d)
            if on_written:
                on_written(d)

    with ThreadPoolExecutor(1, thread_name_prefix="seglib-write") as writer:
        job = None
        for path, loaded in prefetch(images, read_image):
            try:
                image, full = loaded.result()
            except PH2Error as e:
                bad.append(str(e))
                continue
            mask = predict_mask(model, cfg, norm, image, tta=o.tta, out_size=full,
                                pipeline=o.pipeline, rt=rt)  # fmt: skip
            if job is not None:
                done(job)  # the previous image's files, written while this one was predicted
            job = writer.submit(_write_outputs, out, path.stem, image, mask, overlay)
        if job is not None:
            done(job)
    if bad:
        raise PredictFailed(bad, len(images), written)
    return written


def _write_outputs(out: Path, stem: str, image, mask, overlay: bool) -> list[Path]:
    """Write ``<stem>_mask.png`` (and ``<stem>_overlay.png``); return the paths written."""
    dests = [out / f"{stem}_mask.png"]  # write_png makes ``out`` if needed
    write_png(dests[0], mask.astype(np.uint8) * 255)
    if overlay:
        dests.append(out / f"{stem}_overlay.png")
        write_png(dests[1], draw_outline(image, mask))
    return dests


def export_weights(
    results: Path, dest: Path = DEFAULT_WEIGHTS, pipeline: str | None = None
) -> Path:
    """Copy the best run's checkpoint (highest best val IoU: chosen on val, never on test; a
    refit only alone, as it trained on val) to
    ``dest`` in fp16, with its config beside it as ``<dest>.json``; return the run folder.
    ``pipeline`` (:mod:`seglib.infer.postprocess`) is recorded in the config as the checkpoint's default
    inference pipeline."""
    from seglib import store

    runs = [r for r in store.load_runs(results) if r["test"] and (r["dir"] / "best.pt").exists()]
    if not runs:
        raise FileNotFoundError(
            f"{results}: no finished run with a best.pt checkpoint; give the --out folder of "
            "a finished `seglib run`"
        )
    if len(runs) > 1 and any(r["config"].get("refit") for r in runs):
        raise ValueError(
            f"{results}: {len(runs)} runs, refits among them (trained on val): none can be chosen "
            "on val; export a folder holding the one run to ship"
        )
    best = max(runs, key=lambda r: max(h["val_iou"] for h in r["history"]))
    ckpt = checkpoint.load_checkpoint(best["dir"] / "best.pt", "model")
    if pipeline is not None:
        pipe.resolve(pipeline, {})  # an unknown name fails here
        ckpt["config"] = {**ckpt["config"], "pipeline": pipeline}
    ckpt["model"] = {k: v.half() if v.is_floating_point() else v for k, v in ckpt["model"].items()}
    checkpoint.save(dest, ckpt)
    store.write_json(Path(dest).with_suffix(".json"), {"run": best["name"], **ckpt["config"]})
    return best["dir"]
