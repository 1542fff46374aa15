"""The measuring half of ``benchmarks/gpu_check.py``: machine facts, train images/s of one net in
one precision, and the time a run will take. Imports torch and seglib's model, loss, runtime,
training and checkpoint code only (nothing that needs matplotlib, scipy or scikit-image).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from seglib import losses, models
from seglib.augment.basic import augment
from seglib.engine import checkpoint, evaluate, train
from seglib.runtime import runtime

# Forward-only images (validation, test) cost about a third of a training image (forward +
# backward ~ 3 forwards, the usual rule of thumb); fit's test phase evaluates ~900 images
# (test and val, each plain and with 8-fold test-time augmentation).
EVAL_COST = 1 / 3
TEST_IMAGES = 900


def facts(device: str = "auto") -> dict:
    """What the check ran on: device name, capability, memory, versions, the automatic precision
    and whether fp32 convolutions and matmuls may use TF32 (which makes "fp32" faster on
    Ampere and newer)."""
    rt = runtime(device)
    info = rt.describe() | {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "tf32_conv": torch.backends.cudnn.allow_tf32,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
    }
    if rt.device.type == "cuda":
        p = torch.cuda.get_device_properties(rt.device)
        info |= {"sms": p.multi_processor_count, "memory_gib": round(p.total_memory / 2**30, 1)}
    return info


def bench_net(
    net: str,
    precision: str,
    data,
    train_idx: torch.Tensor,
    cfg,
    warm_steps: int,
    steps: int,
    device: str = "auto",
    save_dir: Path | None = None,
) -> dict:
    """Time ``steps`` training steps of ``net`` after ``warm_steps`` untimed ones (cuDNN
    autotuning, allocator warm-up), with the body of ``train.fit``'s loop: uint8 batch ->
    normalised on the device (``seglib.engine.evaluate.prepare``), ``augment``, autocast forward, BCE, scaled
    backward, Adam step. ``cfg`` gives size-independent scale: width, depth, batch_size, lr.

    With ``save_dir``, also times saving the checkpoints ``fit`` writes (on a CPU every epoch)
    (``last.pt`` with the optimizer state, ``best.pt`` when val improves) once, there.

    Returns a dict: net, precision (the one used), img_s, ms_step, warm_s, peak_gpu_mb (CUDA),
    save_s (with ``save_dir``)."""
    rt = runtime(device, precision)
    cuda = rt.device.type == "cuda"
    torch.manual_seed(0)
    model = rt.format(models.build(net, width=cfg.width, depth=cfg.depth).to(rt.device))
    model.train()
    loss_fn = losses.build("bce")
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scaler = rt.scaler()
    gen = torch.Generator().manual_seed(0)
    images, masks = rt.resident(data.images), rt.resident(data.masks)
    norm = train.norm_stats(data.images[train_idx]).to(rt.device)
    bs = min(cfg.batch_size, len(train_idx))
    batches = [train_idx[i : i + bs] for i in range(0, len(train_idx) - bs + 1, bs)]

    def step(idx):
        x, y = evaluate.prepare(rt, images, masks, idx, norm)
        x, y = augment(x, y, gen)
        train.train_step(rt, model, loss_fn, opt, scaler, x, y)

    def sync():
        if cuda:
            torch.cuda.synchronize(rt.device)

    if cuda:
        torch.cuda.reset_peak_memory_stats(rt.device)
    t = time.perf_counter()
    for i in range(warm_steps):
        step(batches[i % len(batches)])
    sync()
    warm_s = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(steps):
        step(batches[(warm_steps + i) % len(batches)])
    sync()
    seconds = time.perf_counter() - t
    res = {
        "net": net,
        "precision": rt.precision,
        "img_s": steps * bs / seconds,
        "ms_step": 1000 * seconds / steps,
        "warm_s": warm_s,
        "peak_gpu_mb": torch.cuda.max_memory_allocated(rt.device) / 2**20 if cuda else None,
    }
    if save_dir is not None:
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=save_dir, prefix=".bench-") as tmp:
            t = time.perf_counter()
            checkpoint.save(Path(tmp) / "last.pt", {"model": model.state_dict(), "opt": opt.state_dict()})  # fmt: skip
            checkpoint.save(Path(tmp) / "best.pt", {"model": model.state_dict()})
            res["save_s"] = time.perf_counter() - t
    return res  # the caller frees the GPU memory (``torch.cuda.empty_cache()``)


def epoch_s_from_bench(img_s: float, save_s: float, n_train: int, n_val: int) -> float:
    """Rough wall seconds of one ``fit`` epoch from the bench: train images at ``img_s``,
    validation at :data:`EVAL_COST` of that, plus its checkpoint writes: one save, or less where
    ``fit`` writes only every few epochs to keep them under ``train.GPU_SAVE_SHARE`` of the time."""
    compute = (n_train + EVAL_COST * n_val) / img_s
    share = train.GPU_SAVE_SHARE
    return compute + min(save_s, compute * share / (1 - share))


def estimate_run_s(
    net: str,
    epochs_left: int,
    per_epoch: dict[str, float],
    img_s: dict[str, float],
    bench_epoch_s: dict[str, float],
) -> float | None:
    """Seconds ``epochs_left`` more epochs of ``net`` will take, from the best evidence there is:

    1. ``per_epoch[net]``: wall seconds per epoch measured on a run of this net (this call);
    2. another net's measured ``per_epoch``, scaled by the bench's img/s of the two nets;
    3. ``bench_epoch_s[net]`` (:func:`epoch_s_from_bench`) plus the test phase;
    None when none is known (then the run is started and the hard deadline guards it)."""
    if net in per_epoch:
        return epochs_left * per_epoch[net]
    for other, s in per_epoch.items():
        if other in img_s and net in img_s:
            return epochs_left * s * img_s[other] / img_s[net]
    if net in bench_epoch_s and net in img_s:
        return epochs_left * bench_epoch_s[net] + EVAL_COST * TEST_IMAGES / img_s[net]
    return None
