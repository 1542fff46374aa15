"""Evaluation: a model's per-image metrics on a set of images, and a finished run's ``best.pt``
on the test split (``test.json``)."""

from __future__ import annotations

from pathlib import Path

import torch

from seglib import losses, metrics, models, store
from seglib.augment.tta import tta_logits
from seglib.data import colour, multi
from seglib.engine import checkpoint
from seglib.runtime import Runtime, runtime


def batches(n: int, bs: int, gen: torch.Generator | None = None) -> list[torch.Tensor]:
    """Index batches of ``bs`` over ``n`` items: shuffled by ``gen``, else in order."""
    order = torch.randperm(n, generator=gen) if gen is not None else torch.arange(n)
    return [order[i : i + bs] for i in range(0, n, bs)]


def prepare(rt: Runtime, images: torch.Tensor, masks: torch.Tensor, idx: torch.Tensor, norm):
    """The batch ``idx`` of uint8 ``images`` and 0/1 ``masks``, on the runtime's device and in its
    memory format: images in [0, 1], normalised with ``norm`` (mean, std); masks float."""
    x = images[idx.to(images.device)]
    y = masks[idx.to(masks.device)]
    x = x.to(rt.device, non_blocking=True).float().div_(255).sub_(norm[0]).div_(norm[1])
    y = y.to(rt.device, non_blocking=True).float()
    return rt.format(x), rt.format(y)


@torch.inference_mode()
def evaluate(
    model, loss_fn, rt: Runtime, images, masks, norm, bs: int = 32, tta: bool = False
) -> dict:
    """Per-image metrics and the mean loss of ``model`` in eval mode; ``tta``: logits averaged
    over the 8 flips/rotations (:func:`seglib.augment.tta.tta_logits`).

    Returns a dict of (N,) CPU tensors ``iou``, ``dice``, ``score`` and float ``loss``."""
    model.eval()
    out = {"iou": [], "dice": [], "score": []}
    total = torch.zeros((), device=rt.device)
    for idx in batches(len(images), bs):
        x, y = prepare(rt, images, masks, idx, norm)
        with rt.autocast():
            logits = tta_logits(model, x) if tta else model(x)
        total += loss_fn(logits, y) * len(idx)  # epoch mean weights every image equally
        for k, v in metrics.summarise(metrics.from_logits(logits), y).items():
            out[k].append(v)
    res = {k: torch.cat(v).cpu() for k, v in out.items()}
    res["loss"] = total.item() / len(images)
    return res


def _means(res: dict) -> dict:
    return {k: res[k].mean().item() for k in ("iou", "dice", "score")}


def _per_dataset(data, split, test: dict, val: dict | None) -> dict:
    """Several datasets: each one's test means (``by_dataset``) and val means (with TTA)."""
    if not getattr(data, "parts", None):
        return {}
    keys = ("iou", "dice", "score")
    _, va, te = split
    out = multi.by_dataset(data, te, {k: test[k] for k in keys})
    if val is not None:
        for name, v in multi.by_dataset(data, va, {k: val["tta"][k] for k in keys}).items():
            out.setdefault(name, {"n": 0})["val"] = v
    return {"by_dataset": out, "datasets": multi.describe(data, split)}


def evaluate_checkpoint(
    out_dir: Path,
    data,
    split,
    device: str = "auto",
    tta: bool = True,
    quiet: bool = True,
    precision: str = "auto",
    extra: dict | None = None,
) -> dict:
    """Evaluate a run's ``best.pt`` on the test split, write and return ``test.json``.

    The headline ``iou``/``dice``/``score`` use test-time augmentation when ``tta``; ``plain``
    holds the test means without it, and ``val`` both variants on val (where that choice is made;
    not for a refit, which trained on val).
    ``extra`` (e.g. training speed) is added to ``test.json``; keys a re-test does not recompute
    (speed, runtime) are kept from the previous ``test.json``.
    """
    out_dir = Path(out_dir)
    rt = runtime(device, precision)
    ckpt, model, loss_fn, norm = _load_best(out_dir / "best.pt", rt)
    refit = ckpt["config"].get("refit")
    _, va, te = (torch.as_tensor(s, dtype=torch.long) for s in split)
    images = rt.resident(colour.correct_uint8(data.images, colour.of(ckpt["config"])))
    masks = rt.resident(data.masks)

    def run(idx, with_tta):
        idx = idx.to(images.device)
        return evaluate(model, loss_fn, rt, images[idx], masks[idx], norm, tta=with_tta)

    test = run(te, tta)
    val = None if refit else {"plain": run(va, False), "tta": run(va, True)}
    plain = _means(run(te, False)) if tta else _means(test)
    previous = store.read_json(out_dir / "test.json") or {}
    kept = {k: previous[k] for k in ("train_images_per_s", "peak_gpu_memory_mb") if k in previous}
    result = {
        **kept,
        **_test_part(test, data, te, tta),
        "plain": plain,
        **({} if refit else {"val": {k: _means(v) for k, v in val.items()}}),  # a refit: no val
        **_per_dataset(data, split, test, val),
        **_run_part(out_dir, ckpt, model, rt, previous),
        **(extra or {}),
    }
    store.write_json(out_dir / "test.json", result)
    if quiet:
        print(
            f"{out_dir.name}: test IoU {result['iou']:.3f} Dice {result['dice']:.3f} "
            f"score {result['score']:.3f} (best epoch {result['best_epoch']}, "
            f"{result['train_seconds']:.0f} s)",
            flush=True,
        )
    return result


def _load_best(path: Path, rt: Runtime) -> tuple:
    """(checkpoint, model, loss, norm) of a run's ``best.pt``, on the runtime's device."""
    ckpt = checkpoint.load_checkpoint(path, "model")
    cfg = ckpt["config"]
    model = rt.format(checkpoint.build_model(ckpt, path)).to(rt.device)
    loss_fn = losses.build(cfg["loss"], **cfg.get("loss_kw", {}))
    return ckpt, model, loss_fn, ckpt["norm"].to(rt.device)


def _test_part(test: dict, data, te: torch.Tensor, tta: bool) -> dict:
    """The test means, loss, per-image values and names of ``test.json``."""
    return {
        **_means(test),
        "loss": test["loss"],
        "iou_per_image": test["iou"].tolist(),
        "dice_per_image": test["dice"].tolist(),
        "score_per_image": test["score"].tolist(),
        "names": [data.names[i] for i in te.tolist()],
        "dataset": getattr(data, "source", "PH2"),
        "tta": tta,
    }


def _run_part(out_dir: Path, ckpt: dict, model, rt: Runtime, previous: dict) -> dict:
    """The run's facts in ``test.json``: best epoch, size, time, and where it trained and tested."""
    history = store.read_json(out_dir / "history.json") or []
    saved_cfg = store.read_json(out_dir / "config.json") or {}
    return {
        "best_epoch": ckpt["epoch"],
        "params": models.count_params(model),
        "train_seconds": sum(h["seconds"] for h in history),
        "device": previous.get("device", rt.name),
        "runtime": previous.get("runtime", saved_cfg.get("runtime", rt.describe())),
        "test_runtime": rt.describe(),
    }
