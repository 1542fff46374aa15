"""How long will the study take here, and how much faster is seglib than a plain loop?

By default every section runs at a quick scale (one net, 64 px, one repeat, a few epochs and
steps: :data:`QUICK`), about 2 minutes on 2 cores, printing a line as each section starts;
``--full`` runs the scale of benchmarks/README.md (:data:`FULL`). Five sections, each ending in
parseable ``ratio`` lines:

1. ``run``: per-run throughput, a plain PyTorch loop vs seglib's ``train.fit`` on its automatic
   path (details below).
2. ``grid``: a small grid of the ``cpu`` preset (4 losses x ``--grid-epochs``, at the bench's
   size, width and batch) with ``--jobs 1`` (one run at a time on all cores) vs ``--jobs 2`` (two
   runs side by side, the cores split). Each grid pays a fixed start (worker processes import
   torch and load the data once), so short grids understate ``--jobs 2``.
3. ``procs``: one ``python -m seglib run`` process alone vs two of them side by side (as when the
   tests or a notebook run beside the main job); the ratio is the pair's wall time over twice the
   time alone (1.0 = no interference beyond sharing the cores). ``--variants`` repeats the pair
   with ``OMP_WAIT_POLICY=ACTIVE`` (spinning OpenMP threads, as seglib once left them).
4. ``side``: two worker processes training the same small net, one alone, then both at once
   with every core each (``old``), with seglib's thread choice (``new``) and with the cores
   split (``split``), in the automatic precision and fp32 (:mod:`seglib.bench.sidebyside`).
5. ``predict``: ``predict`` with test-time augmentation on ``--images`` synthetic ISIC-style
   JPEGs, the way it ran before (``today``: fp32, contiguous model, one view per forward, file
   by file) vs ``seglib.infer.predict.predict_files`` (``fast``: the runtime's precision,
   channels-last, the views batched, decoding and writing in threads), alternating: images/s,
   CPU use (process CPU time / wall) and whether the two ways' masks agree; on a GPU also
   ``fast`` there. ``--variants`` adds ``fast`` with a contiguous model and, where the runtime
   picks bf16, in fp32.

Both ways train the same net (same init, seed 0), size, width, batch, epochs, Adam learning rate
and BCE loss in one process, alternating (ABBA over the repeats; medians are reported):

- ``plain``: what a student writes: fp32 eager, contiguous NCHW, float images normalised once,
  ``DataLoader(TensorDataset(...), shuffle=True)`` (num_workers=0), a per-batch ``.item()``,
  per-epoch validation with ``.cpu()`` predictions and IoU in numpy.
- ``fit``: ``seglib.engine.train.fit`` on its device fast path (uint8 data normalised on the fly,
  channels_last, no per-batch host syncs, evaluation under inference_mode, a checkpoint per
  epoch), in a fresh temporary folder, with ``augment=False`` so both do equal work.

Time = from the call to the end of the last epoch (train + validation, plus fit's checkpoints);
fit's final test evaluation is left out. img/s = training images per second of that time.
``--variants`` adds single ideas: plain+channels_last, plain+bf16 autocast, fit in fp32 (the
automatic path picks bf16 where the CPU has native bf16) and fit with its augmentation on.

Usage: ``python seglib/bench/throughput.py --nets unet --threads 2`` or
``python -m seglib bench --nets unet ...``; ``--help`` lists the options.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from seglib import data as ph2
from seglib import losses, models, store
from seglib.bench import jobs
from seglib.bench.sidebyside import section_side
from seglib.data.ph2 import resolve_data
from seglib.engine import grid, train
from seglib.engine.options import FitOptions
from seglib.environ import cores
from seglib.infer import predict as predict_module
from seglib.runtime import choose_precision, cpu_native_bf16, runtime

SECTIONS = ("run", "grid", "procs", "side", "predict")

SEED = 0
DEPTH = 4  # fit's default depth; models.build's too


def run_plain(net, data, split, a, dev, channels_last=False, bf16=False):
    """The student loop. Returns (seconds, last-epoch val IoU)."""
    t0 = time.perf_counter()
    tr, va = (torch.as_tensor(s, dtype=torch.long) for s in split[:2])
    norm = train.norm_stats(data.images[tr])  # the same statistics fit uses
    x = (data.images.float() / 255 - norm[0]) / norm[1]
    y = data.masks.float()
    loader = DataLoader(TensorDataset(x[tr], y[tr]), batch_size=a.batch_size, shuffle=True)
    val_loader = DataLoader(TensorDataset(x[va], y[va]), batch_size=a.batch_size)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    torch.manual_seed(SEED)
    model = models.build(net, width=a.width, depth=DEPTH).to(dev, memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    loss_fn = losses.build("bce")
    for _epoch in range(a.epochs):
        model.train()
        running = 0.0
        for xb, yb in loader:
            xb, yb = xb.to(dev, memory_format=fmt), yb.to(dev)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            running += loss.item()  # per-batch logging: a host sync per step
        model.eval()
        ious = []
        with torch.no_grad():
            for xb, yb in val_loader:
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                    logits = model(xb.to(dev, memory_format=fmt))
                pred, t = (logits > 0).cpu().numpy(), yb.numpy() > 0.5
                inter, union = (pred & t).sum(axis=(1, 2, 3)), (pred | t).sum(axis=(1, 2, 3))
                ious.extend(np.where(union > 0, inter / np.maximum(union, 1), 1.0))
        val_iou = float(np.mean(ious))
    return time.perf_counter() - t0, val_iou


def run_fit(net, data, split, a, augment=False, precision="auto"):
    """seglib's fit in a fresh temporary folder. Returns (seconds, last-epoch val IoU)."""
    cfg = train.RunConfig(
        net=net, loss="bce", seed=SEED, size=a.size, width=a.width, depth=DEPTH,
        epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, weight_decay=0.0,
        schedule="none", augment=augment, data=a.data,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        run = Path(tmp) / "run"
        t0 = time.time()
        train.fit(
            cfg, data, split, run, FitOptions(device=a.device, quiet=True, precision=precision)
        )
        # history.json is rewritten after each epoch's checkpoint: its mtime marks the end
        # of the epoch loop, before fit's final test evaluation.
        seconds = (run / "history.json").stat().st_mtime - t0
        val_iou = store.read_json(run / "history.json")[-1]["val_iou"]
    return seconds, val_iou


def ways(a, dev) -> dict:
    """Name -> callable(net, data, split): the compared ways, plain first."""
    out = {
        "plain": lambda n, d, s: run_plain(n, d, s, a, dev),
        "fit": lambda n, d, s: run_fit(n, d, s, a),
    }
    if a.variants:
        out["plain+cl"] = lambda n, d, s: run_plain(n, d, s, a, dev, channels_last=True)
        out["plain+bf16"] = lambda n, d, s: run_plain(n, d, s, a, dev, bf16=True)
        out["fit+fp32"] = lambda n, d, s: run_fit(n, d, s, a, precision="fp32")
        out["fit+aug"] = lambda n, d, s: run_fit(n, d, s, a, augment=True)
    return out


def warm_up(net, a, dev) -> None:
    """One untimed train step per memory format, so one-time kernel setup is not timed."""
    for fmt in (torch.contiguous_format, torch.channels_last):
        model = models.build(net, width=a.width, depth=DEPTH).to(dev, memory_format=fmt)
        x = torch.randn(min(a.batch_size, 2), 3, a.size, a.size, device=dev)
        model(x.to(memory_format=fmt)).mean().backward()


def reset_peaks(dev) -> bool:
    """Reset the peak RSS (Linux: /proc/self/clear_refs) and CUDA peak; True if RSS was reset."""
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peaks(dev) -> tuple[float, float]:
    """(peak RSS MB from ru_maxrss, peak CUDA memory MB or nan)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_mb = rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes vs KiB
    gpu = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else float("nan")
    return rss_mb, gpu


QUICK = {"nets": "unet", "size": 64, "epochs": 1, "repeats": 1, "grid_epochs": 2, "images": 2}
QUICK |= {"side_steps": 4}
"""The default scale: every section in under 2 minutes on 2 cores (a verdict, not a study)."""
FULL = {"nets": "unet,segnet", "size": 128, "epochs": 3, "repeats": 2, "grid_epochs": 10}
FULL |= {"images": 8, "side_steps": 20}
"""``--full``: the scale of the measurements in benchmarks/README.md."""


def options(p: argparse.ArgumentParser) -> None:
    """The options; those in :data:`QUICK` default to it, or to :data:`FULL` with ``--full``."""

    def scaled(key: str) -> str:
        return f"(default {QUICK[key]}; --full: {FULL[key]})"

    p.add_argument("--full", action="store_true", help="the full measurement (several minutes)")
    p.add_argument("--nets", help=f"comma list {scaled('nets')}")
    p.add_argument("--size", type=int, help=f"image side, multiple of 16 {scaled('size')}")
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--epochs", type=int, help=f"epochs of the run section {scaled('epochs')}")
    p.add_argument("--repeats", type=int, help=f"runs per way, alternating {scaled('repeats')}")
    p.add_argument("--lr", type=float, default=grid.PRESETS["cpu"].lr)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: seglib's choice)")
    p.add_argument("--device", default="auto", help="cpu | cuda | auto")
    p.add_argument("--data", default="synthetic", help="synthetic | download | PH2 folder/archive")
    p.add_argument("--variants", action="store_true", help="also time single ideas (above)")
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help=f"comma list of {','.join(SECTIONS)} (default all)")  # fmt: skip
    p.add_argument("--grid-epochs", type=int,
                   help=f"epochs per run in grid and procs {scaled('grid_epochs')}")  # fmt: skip
    p.add_argument("--side-steps", type=int,
                   help=f"side: training steps per process {scaled('side_steps')}")  # fmt: skip
    p.add_argument("--weights", default=str(predict_module.DEFAULT_WEIGHTS),
                   help="predict: checkpoint (default: the shipped weights)")  # fmt: skip
    p.add_argument("--images", type=int, help=f"predict: images {scaled('images')}")
    p.add_argument("--image-size", default="576x768", help="predict: image HxW (default 576x768)")


def parse(argv) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="seglib bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    options(p)
    if argv and argv[0] == "--":  # `python -m seglib bench -- --nets unet`
        argv = argv[1:]
    a = p.parse_args(argv)
    for key, value in (FULL if a.full else QUICK).items():
        if getattr(a, key) is None:
            setattr(a, key, value)
    a.nets = [n.strip().lower() for n in a.nets.split(",") if n.strip()]
    a.sections = [n.strip().lower() for n in a.sections.split(",") if n.strip()]
    if set(a.sections) - set(SECTIONS):
        p.error(f"--sections {','.join(a.sections)}: choose from {', '.join(SECTIONS)}")
    try:
        a.image_size = tuple(int(v) for v in a.image_size.lower().split("x"))
    except ValueError:
        a.image_size = ()
    if len(a.image_size) != 2 or min(a.image_size) < 16 or a.images < 1:
        p.error("--image-size must be HxW (each at least 16) and --images at least 1")
    for n in a.nets:
        if n not in models.NAMES:
            p.error(f"unknown net {n!r}; choose from {', '.join(models.NAMES)}")
    if a.size % 2**DEPTH or a.size < 2**DEPTH:
        p.error(f"--size {a.size}: must be a multiple of {2**DEPTH}")
    if min(a.epochs, a.repeats, a.batch_size, a.width, a.side_steps) < 1:
        p.error("--epochs, --repeats, --batch-size, --width and --side-steps must be >= 1")
    return a


def header(a, rt) -> str:
    """Machine facts every number depends on."""
    caps = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    cpu = caps.get("cpu_name") or platform.processor() or "unknown CPU"
    return (
        f"# CPU {cpu} ({cores()} cores, {torch.backends.cpu.get_cpu_capability()}, native bf16: "
        f"{'yes' if cpu_native_bf16() else 'no'}), device {rt.name}, precision {rt.precision}, "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}"
    )


def main(argv: list[str] | None = None) -> int:
    a = parse(sys.argv[1:] if argv is None else list(argv))
    if a.threads:
        torch.set_num_threads(a.threads)
    rt = runtime(a.device)
    print(header(a, rt), flush=True)
    scale = "full scale" if a.full else "quick scale: a verdict in about 2 minutes; --full measures"
    print(f"# sections {','.join(a.sections)}, {scale}", flush=True)
    if "run" in a.sections:
        section_run(a, rt)
    for net in a.nets:
        if "grid" in a.sections:
            jobs.section_grid(a, net)
        if "procs" in a.sections:
            jobs.section_procs(a, net)
    if "side" in a.sections:
        native = choose_precision("cpu", native_bf16=cpu_native_bf16())
        section_side(a, list(dict.fromkeys([native, "fp32"])))
    if "predict" in a.sections:
        from seglib.bench.predict import section_predict

        section_predict(a)
    return 0


def section_run(a, rt) -> None:
    """Plain loop vs fit, per net (ABBA over ``--repeats``)."""
    dev = rt.device
    data = resolve_data(a.data, a.size, quiet=True)
    split = ph2.split_indices(len(data), seed=0)
    n_train, n_val = len(split[0]), len(split[1])
    todo = ways(a, dev)
    print(
        f"# device {rt.name}, torch {torch.__version__}, data {a.data} ({n_train} train / "
        f"{n_val} val), size {a.size}, width {a.width}, batch {a.batch_size}, epochs {a.epochs}, "
        f"repeats {a.repeats}, Adam lr {a.lr}, BCE",
        flush=True,
    )
    rows = {}
    for net in a.nets:
        warm_up(net, a, dev)
        print(f"# run {net}: {', '.join(todo)} x {a.repeats}", flush=True)
        names = list(todo)
        for r in range(a.repeats):
            for way in names if r % 2 == 0 else names[::-1]:  # ABBA: balances drift
                per_run = reset_peaks(dev)
                seconds, val_iou = todo[way](net, data, split)
                rows.setdefault((net, way), []).append((seconds, val_iou, *peaks(dev)))
    cuda = dev.type == "cuda"
    head = f"{'net':<7} {'way':<11} {'img/s':>8} {'s/epoch':>8} {'val IoU':>8} {'RSS MB':>7}"
    print(head + (f" {'GPU MB':>7}" if cuda else "") + f" {'vs plain':>9}")
    for net in a.nets:
        med = {w: statistics.median(r[0] for r in rows[(net, w)]) for w in todo}
        for way in todo:
            runs = rows[(net, way)]
            iou = statistics.median(r[1] for r in runs)
            rss, gpu = max(r[2] for r in runs), max(r[3] for r in runs)
            line = (
                f"{net:<7} {way:<11} {a.epochs * n_train / med[way]:>8.1f} "
                f"{med[way] / a.epochs:>8.2f} {iou:>8.3f} {rss:>7.0f}"
            )
            print(line + (f" {gpu:>7.0f}" if cuda else "") + f" {med['plain'] / med[way]:>8.2f}x")
        ious = [statistics.median(r[1] for r in rows[(net, w)]) for w in ("fit", "plain")]
        print(
            f"ratio {net}: fit / plain = {med['plain'] / med['fit']:.2f}x img/s "
            f"(val IoU {ious[0]:.3f} vs {ious[1]:.3f}, median of {a.repeats})",
            flush=True,
        )
    print(
        "# fit: augment=False (equal work), weight_decay=0, schedule=none. Time: call to end of "
        "the last epoch incl. validation (+ fit's checkpoints). RSS: "
        + ("peak per run (reset before each)." if per_run else "process high-water mark.")
    )


if __name__ == "__main__":
    sys.exit(main())
