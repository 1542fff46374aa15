"""One training run: ``fit(cfg, data, out_dir)``.

Reads top to bottom: build net and loss, then per epoch train, validate, checkpoint; at the end
evaluate the best checkpoint (by val IoU) on the test split. ``last.pt`` (model, optimizer,
scheduler, RNG, history) lets a crash or ``kill -9`` resume: on a CPU it is written every epoch, so
at most the epoch in flight is lost; on a GPU, where an epoch can take less time than writing it
(docs/how-to/gpu.md), only as often as keeps its writing under :data:`GPU_SAVE_SHARE` of the run's time.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from seglib import losses, models, store
from seglib.augment.basic import augment
from seglib.augment.strong import PATCHES, augment_strong
from seglib.data import colour, multi
from seglib.data.identity import identity
from seglib.engine import checkpoint, failures
from seglib.engine.evaluate import batches, evaluate, evaluate_checkpoint, prepare
from seglib.engine.options import FitOptions
from seglib.engine.state import TrainState
from seglib.runtime import Runtime, runtime


@dataclass
class RunConfig:
    """Everything that defines one run (saved as ``config.json``)."""

    net: str = "unet"
    loss: str = "bce"
    seed: int = 0
    split_seed: int = 0
    split_fractions: list[float] | None = None  # (train, val, test); None: 50/25/25
    size: int = 128
    width: int = 16
    depth: int = 4
    epochs: int = 40
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # "cosine" | "plateau" | "none"
    encoder_lr_scale: float = 1.0  # a pretrained encoder learns at lr x this (seglib.pretrained)
    augment: bool | str = True  # True: flips + mild jitter; "strong": augment_strong; "mixed": half
    # the batches strong; "mixed_patchy"(_mild): mixed, blotchy skin around zoomed-out photos
    loss_kw: dict = field(default_factory=dict)
    data: str = "synthetic"  # one dataset, or several separated by commas (seglib.data.multi)
    data_weights: list[int] | None = None  # several datasets: each one's repeats per epoch
    init: str | None = None  # a model checkpoint whose weights (and norm) start the run
    swa: int = 0  # best.pt = the average of the weights of the last ``swa`` epochs (0: off)
    refit: bool = False  # train on train + val; best.pt = the last epoch (or the swa average)
    colour: str = "none"  # the input's colour correction (seglib.data.colour): "none" | "sog"
    preset: str = "custom"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


GPU_SAVE_SHARE = 0.1
"""On a GPU, at most this share of a run's time goes to writing ``last.pt`` and ``best.pt``."""


def save_due(since_save_s: float, save_s: float | None, share: float | None) -> bool:
    """Whether to write the checkpoints now. ``since_save_s``: seconds since the last write
    ended; ``save_s``: how long it took (None: nothing written yet); ``share``: the most of the
    time writing may take (None: write every epoch). Writing now keeps to ``share`` when
    ``save_s / (since_save_s + save_s) <= share``."""
    if share is None or save_s is None:
        return True
    return save_s * (1 - share) <= share * since_save_s


def _resume_state(model, opt, sched, gen, scaler, history, best, epoch) -> dict:
    """What ``last.pt`` holds (:data:`seglib.engine.checkpoint.KEYS`)."""
    return {
        "model": model.state_dict(),
        "opt": opt.state_dict(),
        "sched": sched.state_dict(),
        "gen": gen.get_state(),
        "scaler": scaler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "history": history,
        "best": best,
        "epoch": epoch,
    }


def train_step(rt: Runtime, model, loss_fn, opt, scaler, x, y):
    """One optimiser step under the runtime's autocast (fp16: through the gradient scaler);
    returns (loss, logits), still on the device."""
    with rt.autocast():
        logits = model(x)
    loss = loss_fn(logits, y)
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    return loss, logits


def _coin(gen: torch.Generator) -> bool:
    """Half the batches of ``augment="mixed"`` get the strong augmentation, the rest the basic."""
    return bool(torch.rand((), generator=gen) < 0.5)


def augment_batch(mode, x, y, gen: torch.Generator, norm):
    """A training batch augmented as ``RunConfig.augment`` says: "strong" always strong, the
    mixed modes strong on a coin flip (with their blotch amplitude), True the basic flips and
    jitter, False nothing."""
    if mode == "strong" or (mode in PATCHES and _coin(gen)):
        return augment_strong(x, y, gen, norm, PATCHES[mode])
    if mode:
        return augment(x, y, gen)
    return x, y


def train_epoch(rt: Runtime, state: TrainState, data, norm, cfg) -> dict:
    """One pass over the training images ``data = (images, masks, indices)`` in shuffled
    batches (``state.gen``): augment, step. Returns the epoch's mean ``train_loss`` and pooled
    ``train_iou``."""
    images, masks, tr = data
    s = state
    s.model.train()
    loss_sum = torch.zeros((), device=rt.device)
    inter = torch.zeros((), device=rt.device)
    union = torch.zeros((), device=rt.device)
    for idx in batches(len(tr), cfg.batch_size, s.gen):
        x, y = prepare(rt, images, masks, tr[idx], norm)
        x, y = augment_batch(cfg.augment, x, y, s.gen, norm)
        loss, logits = train_step(rt, s.model, s.loss_fn, s.opt, s.scaler, x, y)
        loss_sum += loss.detach() * len(idx)
        pred = logits.detach() > 0
        inter += (pred & (y > 0.5)).sum()
        union += (pred | (y > 0.5)).sum()
    return {
        "train_loss": loss_sum.item() / len(tr),
        "train_iou": (inter / union.clamp_min(1)).item(),
    }


def snapshot(model, cfg: RunConfig, norm, epoch: int, datasets=None) -> dict:
    """A ``best.pt`` checkpoint of ``model`` now: its weights copied to the CPU; ``datasets``
    (:func:`seglib.data.multi.describe`) names the data and the cases of its val and test."""
    weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    ckpt = {"model": weights, "config": cfg.to_dict(), "norm": norm.cpu(), "epoch": epoch}
    return ckpt | ({"datasets": datasets} if datasets is not None else {})


def val_choice(data, va, val: dict, row: dict) -> float:
    """The val IoU that picks the best epoch: the pooled one for one dataset; for several, the
    mean of the datasets' own (each archive counts the same, however many images it has),
    recorded in ``row["val_iou_by_dataset"]``."""
    if not getattr(data, "parts", None):
        return row["val_iou"]
    by = multi.by_dataset(data, va.numpy(), {"iou": val["iou"]})
    row["val_iou_by_dataset"] = {k: v["iou"] for k, v in by.items()}
    return sum(row["val_iou_by_dataset"].values()) / len(by)


def averaged(model) -> torch.optim.swa_utils.AveragedModel:
    """Running mean of ``model``'s weights and batch-norm statistics (stochastic weight
    averaging, Izmailov et al. 2018, "Averaging weights leads to wider optima and better
    generalization", arXiv:1803.05407); the statistics are averaged too (``use_buffers``), so no
    extra pass over the data is needed."""
    return torch.optim.swa_utils.AveragedModel(model, use_buffers=True)


def scheduler(cfg: RunConfig, opt):
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=cfg.epochs, eta_min=cfg.lr / 50
        )
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=5)
    if cfg.schedule == "none":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0)
    raise ValueError(f"unknown schedule {cfg.schedule!r}; choose cosine, plateau or none")


def param_groups(model, cfg: RunConfig) -> list[dict]:
    """Adam's parameter groups: a pretrained encoder's weights at ``lr x encoder_lr_scale`` (a
    smaller step keeps what ImageNet taught it while the new decoder learns), the rest at lr."""
    encoder = getattr(model, "encoder", None)
    if encoder is None or cfg.encoder_lr_scale == 1.0:
        return [{"params": list(model.parameters())}]
    own = {id(p) for p in encoder.parameters()}
    rest = [p for p in model.parameters() if id(p) not in own]
    return [
        {"params": list(encoder.parameters()), "lr": cfg.lr * cfg.encoder_lr_scale},
        {"params": rest},
    ]


def norm_stats(images: torch.Tensor) -> torch.Tensor:
    """Per-channel mean and std of uint8 images in [0,1] units, shape (2,1,3,1,1)."""
    x = images.float().div(255)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return torch.stack([mean, std]).view(2, 1, 3, 1, 1)


@failures.guarded  # holds the run folder's lock; clears failed.json when done
def fit(cfg: RunConfig, data, split, out_dir: Path, options: FitOptions | None = None):
    """Train one run and return its test metrics dict (also written to ``test.json``).

    Args:
        cfg: the run's config. data: a ``PH2Data`` (uint8 images, 0/1 masks) at ``cfg.size``.
        split: (train, val, test) index arrays. out_dir: the run folder (resumed if present).
        options: device, precision, test-time augmentation, progress bar and how often
            ``last.pt`` is written (:class:`seglib.engine.options.FitOptions`; None: its defaults).
    """
    o = options or FitOptions()
    out_dir = Path(out_dir)
    if (finished := store.read_json(out_dir / "test.json")) is not None:
        return finished
    rt = runtime(o.device, o.precision)
    t = _build(cfg, rt)
    d = _training_data(cfg, data, split, rt)
    norm = _input_norm(cfg, d.images, d.tr, t.model, rt)
    t.swa = averaged(t.model) if cfg.swa else None
    last = out_dir / "last.pt"
    history, best, start = checkpoint.resume(last, t.model, t.opt, t.sched, t.gen, t.scaler, t.swa)
    _write_config(out_dir, cfg, rt, d.described, data, split)
    if rt.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(rt.device)

    saver = _Saver(out_dir, o.save_share, rt)
    bar = tqdm(range(start, cfg.epochs), initial=start, total=cfg.epochs, desc=out_dir.name,
               disable=o.quiet, leave=True, dynamic_ncols=True)  # fmt: skip
    for epoch in bar:
        row, chosen_by = _epoch(rt, t, cfg, data, d, norm, epoch)
        failures.check_finite(out_dir, epoch + 1, row)  # NaN/inf: RunFailed, last.pt kept
        history.append(row)
        if t.swa is not None and epoch >= cfg.epochs - cfg.swa:
            t.swa.update_parameters(t.model)
        if chosen_by > best and t.swa is None and not cfg.refit:  # a copy, until written
            best, saver.best_ckpt = chosen_by, snapshot(t.model, cfg, norm, epoch + 1, d.described)
        if saver.due(epoch + 1 == cfg.epochs):
            saver.save(t, history, best, epoch + 1)
        store.write_json(out_dir / "history.json", history)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_iou=f"{row['val_iou']:.3f}")
    if t.swa is not None or cfg.refit:  # no choice on val: the average or the last epoch
        final = t.swa.module if t.swa is not None else t.model  # (saved again on a resumed finish)
        checkpoint.save(out_dir / "best.pt", snapshot(final, cfg, norm, len(history), d.described))
    return evaluate_checkpoint(
        out_dir, data, split, device=o.device, tta=o.tta, quiet=o.quiet, precision=o.precision,
        extra=_speed(rt, len(d.tr), history),
    )  # fmt: skip


@dataclass
class _Data:
    """The run's resident images and masks, train and val indices, val images, datasets."""

    images: torch.Tensor
    masks: torch.Tensor
    tr: torch.Tensor
    va: torch.Tensor
    val_images: torch.Tensor
    val_masks: torch.Tensor
    described: list


def _build(cfg: RunConfig, rt: Runtime) -> TrainState:
    """Net, loss, optimiser, schedule, scaler and generator, seeded by ``cfg.seed``."""
    torch.manual_seed(cfg.seed)
    pretrained = cfg.net in models.PRETRAINED
    net = models.build(cfg.net, cfg.width, cfg.depth, pretrained=pretrained and not cfg.init)
    model = rt.format(net.to(rt.device))
    loss_fn = losses.build(cfg.loss, **cfg.loss_kw)
    opt = torch.optim.Adam(param_groups(model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = scheduler(cfg, opt)
    scaler = rt.scaler()
    gen = torch.Generator().manual_seed(cfg.seed)
    return TrainState(model, loss_fn, opt, sched, scaler, gen)


def _training_data(cfg: RunConfig, data, split, rt: Runtime) -> _Data:
    """Train indices (val too for a refit, repeated by ``data_weights``), val, resident data."""
    tr, va, te = (torch.as_tensor(s, dtype=torch.long) for s in split)
    if cfg.refit:  # the recipe was chosen on val; the final model learns from those images too
        tr = torch.cat([tr, va])
    tr = torch.as_tensor(multi.weighted(data, tr.numpy(), cfg.data_weights), dtype=torch.long)
    described = multi.describe(data, split, with_names=True)
    images = rt.resident(colour.correct_uint8(data.images, cfg.colour))
    masks = rt.resident(data.masks)
    val_images, val_masks = images[va.to(images.device)], masks[va.to(masks.device)]
    return _Data(images, masks, tr, va, val_images, val_masks, described)


def _input_norm(cfg: RunConfig, images, tr: torch.Tensor, model, rt: Runtime) -> torch.Tensor:
    """ImageNet's for a pretrained encoder, else the train ``images``' (as the net sees them:
    colour-corrected); ``cfg.init``: the init's."""
    if cfg.net in models.PRETRAINED:
        from seglib.pretrained import imagenet_norm

        norm = imagenet_norm().to(rt.device)
    else:
        norm = norm_stats(images[tr.to(images.device)]).to(rt.device)
    if cfg.init:
        norm = checkpoint.init_weights(Path(cfg.init), model, cfg).to(rt.device)
    return norm


def _write_config(out_dir: Path, cfg: RunConfig, rt: Runtime, described, data, split) -> None:
    """``config.json``: the config, the runtime, the datasets' sizes and the data's identity."""
    sizes = [{k: v for k, v in d.items() if not k.endswith("_names")} for d in described]
    store.write_json(
        out_dir / "config.json",
        cfg.to_dict()
        | {"runtime": rt.describe(), "datasets": sizes, "data_identity": identity(data, split)},
    )


def _epoch(rt: Runtime, t: TrainState, cfg: RunConfig, data, d: _Data, norm, epoch: int) -> tuple:
    """Train, validate, step the schedule: (the epoch's history row, the val IoU that chooses)."""
    t0 = time.perf_counter()
    row = {"epoch": epoch + 1}
    row |= train_epoch(rt, t, (d.images, d.masks, d.tr), norm, cfg)
    val = evaluate(t.model, t.loss_fn, rt, d.val_images, d.val_masks, norm)
    row["val_loss"] = val["loss"]
    row |= {f"val_{k}": val[k].mean().item() for k in ("iou", "dice", "score")}
    chosen_by = val_choice(data, d.va, val, row)
    row["lr"] = t.opt.param_groups[-1]["lr"]  # the decoder's (a pretrained encoder's is scaled)
    t.sched.step(row["val_iou"]) if cfg.schedule == "plateau" else t.sched.step()
    row["seconds"] = time.perf_counter() - t0
    return row, chosen_by


class _Saver:
    """Writes ``best.pt`` (a new best waits in ``best_ckpt``) and ``last.pt`` when they are due."""

    def __init__(self, out_dir: Path, save_share, rt: Runtime):
        if save_share == "auto":
            save_share = None if rt.device.type == "cpu" else GPU_SAVE_SHARE
        self.out_dir, self.share = out_dir, save_share
        self.best_ckpt, self.saved_at, self.save_s = None, time.perf_counter(), None

    def due(self, last_epoch: bool) -> bool:
        """Whether to write now: after the last epoch always, else as :func:`save_due` says."""
        return last_epoch or save_due(time.perf_counter() - self.saved_at, self.save_s, self.share)

    def save(self, t: TrainState, history: list, best: float, epoch: int) -> None:
        """Write the waiting best (if any) and ``last.pt``, timing the writing."""
        t_save = time.perf_counter()
        if self.best_ckpt is not None:
            checkpoint.save(self.out_dir / "best.pt", self.best_ckpt)
            self.best_ckpt = None
        state = _resume_state(t.model, t.opt, t.sched, t.gen, t.scaler, history, best, epoch)
        swa = {"swa": t.swa.state_dict()} if t.swa is not None else {}
        checkpoint.save(self.out_dir / "last.pt", state | swa)
        self.saved_at = time.perf_counter()
        self.save_s = self.saved_at - t_save


def _speed(rt: Runtime, n_train: int, history: list[dict]) -> dict:
    """Training images per second over the epochs run, and the peak GPU memory on a GPU."""
    speed = {
        "train_images_per_s": n_train * len(history) / max(sum(h["seconds"] for h in history), 1e-9)
    }
    if rt.device.type == "cuda":
        speed["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated(rt.device) / 2**20
    return speed
