# ruff: noqa: E402  (torch is imported after the time budget starts and tqdm is stubbed)
"""Course-scale check on a CUDA GPU, sized for a short lease of a GPU machine.

Within ``--budget-s`` seconds (default 480) from the script's start:

1. header: GPU name, compute capability, torch/CUDA/cuDNN versions, the precision ``auto``
   picks there (``seglib.runtime``) and whether "fp32" may use TF32.
2. bench: each net (segnet, unet, unet2) at the course scale (``PRESETS["course"]``: 256 px,
   width 64, batch 25) trains ``--warm-steps`` untimed then ``--steps`` timed steps of
   ``train.fit``'s loop body on PH2 images, in fp32 and in the automatic precision; a row each
   (img/s, ms/step, peak GPU MB, seconds to save fit's checkpoints once) and a line
   ``ratio <net>: auto / fp32 = X.XXx img/s``.
3. grid: the ``course`` preset (what ``python -m seglib run --preset course`` trains), in this
   process through ``seglib.engine.grid`` and ``seglib.engine.train.fit``, one run at a time into
   ``--out``. A run whose estimated time (``gpu_bench.estimate_run_s``) exceeds the time left
   is not started; a hard deadline (SIGALRM) stops a run the estimate got wrong, leaving it
   resumable from its ``last.pt``.
4. archive: ``gpu_check.tar.gz`` holding ``<out name>/gpu_check.json`` (every call's header,
   bench and run log) and config.json, history.json, test.json (failed.json) of every run: JSON
   only, no checkpoints. Written under ``$OUT`` when set (the folder a remote job hands back), else
   beside ``--out``.

A second call continues: finished runs (``test.json``) are skipped and an interrupted one
resumes from ``last.pt`` (same machine only). On a fresh machine the finished runs come from
``--restore`` (default ``gpu/gpu_check.tar.gz``: copy the returned archive there).

Without CUDA, or with ``--tiny``, the same code runs at a tiny scale (32 px, width 4, 2 epochs)
on synthetic data in seconds: tests/bench/test_gpu_check.py runs it so the script cannot rot.

Imports: torch, torchvision, numpy, PIL and seglib's data, engine and checkpoint
modules (none of them imports matplotlib, scipy or scikit-image); where ``tqdm`` is missing a
silent stand-in replaces it (seglib's progress bars).

How to run on a GPU machine
---------------------------
1. In the repository root (``gpu/`` is git-ignored)::

       seglib prepare PH2Dataset.tar.xz gpu/PH2-256.tar --size 256

2. Copy the repository, with ``gpu/``, to the GPU machine and run there, with ``OUT`` set to a
   folder you will copy back: ``bash benchmarks/gpu_check.sh --budget-s 480`` (the same
   without the wrapper: ``PYTHONUNBUFFERED=1 python3 -m benchmarks.gpu_check --budget-s 480
   2>&1 | tee $OUT/gpu_check.log``). It leaves ``gpu_check.tar.gz`` and ``gpu_check.log`` in
   ``$OUT``.
3. To continue the grid on a fresh machine: copy ``gpu_check.tar.gz`` back into ``gpu/`` and
   run the same command; its finished runs are restored and skipped.
4. To keep the results: ``mkdir -p results && tar -xzf gpu/gpu_check.tar.gz -C results`` (gives
   ``results/course/``), then ``seglib report results/course``.
"""

from __future__ import annotations

import time

T0 = time.monotonic()  # the budget counts from here, before torch is imported

import argparse
import importlib.machinery
import os
import signal
import sys
import types
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tqdm_stand_in() -> None:
    """Install a silent ``tqdm.auto.tqdm`` where tqdm is not installed."""
    try:
        import tqdm.auto  # noqa: F401
    except ImportError:

        class tqdm:  # noqa: N801 - the name seglib imports
            def __init__(self, iterable=None, *args, **kwargs):
                self.iterable = iterable

            def __iter__(self):
                return iter(self.iterable)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def update(self, *args, **kwargs):
                pass

            set_postfix = set_postfix_str = close = refresh = update

            @staticmethod
            def write(text, *args, **kwargs):
                print(text, flush=True)

        mod, auto = types.ModuleType("tqdm"), types.ModuleType("tqdm.auto")
        for m in (mod, auto):  # torch._dynamo asks importlib for the spec of "tqdm"
            m.__spec__ = importlib.machinery.ModuleSpec(m.__name__, None)
        mod.tqdm = auto.tqdm = tqdm
        mod.auto = auto
        sys.modules.update({"tqdm": mod, "tqdm.auto": auto})


_tqdm_stand_in()

import torch

from benchmarks import gpu_bench, gpu_results
from seglib import store
from seglib.data.fetch import cache_dir
from seglib.data.ph2 import load_dataset, split_indices
from seglib.data.synth import make_synthetic_ph2
from seglib.engine import grid, train
from seglib.engine.failures import RunFailed
from seglib.engine.options import FitOptions

TINY = {"size": 32, "width": 4, "depth": 2, "epochs": 2, "batch_size": 4}


class OutOfTime(BaseException):
    """The budget's hard deadline passed (raised by SIGALRM; a BaseException so that no
    ``except Exception`` in the training code swallows it)."""


def _alarm(signum, frame):
    raise OutOfTime


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget-s", type=float, default=480, help="seconds for everything")
    p.add_argument("--data", default="gpu/PH2-256.tar", help="PH2 folder or archive")
    p.add_argument("--out", default=None, help="results folder (gpu/results/course or /tiny)")
    p.add_argument("--restore", default="gpu/gpu_check.tar.gz", help="an earlier archive")
    p.add_argument("--tiny", action="store_true", help="tiny synthetic scale (automatic on CPU)")
    p.add_argument("--sections", default="bench,grid", help="comma list of bench, grid")
    p.add_argument("--nets", default=",".join(grid.NETS))
    p.add_argument("--losses", default=",".join(grid.LOSSES))
    p.add_argument("--warm-steps", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--max-runs", type=int, default=None, help="train at most N runs this call")
    p.add_argument("--partial", action="store_true", help="start a run even if it cannot finish")
    p.add_argument("--reserve-s", type=float, default=15, help="seconds kept for the archive")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", help="the grid's precision")
    a = p.parse_args(argv)
    a.nets, a.losses = a.nets.split(","), a.losses.split(",")
    a.sections = set(a.sections.split(","))
    if not torch.cuda.is_available() and not a.tiny:
        print("# no CUDA GPU here: running the tiny CPU fallback (--tiny)", flush=True)
        a.tiny = True
    a.out = Path(a.out or ("gpu/results/tiny" if a.tiny else "gpu/results/course"))
    return a


def left(a) -> float:
    """Seconds left until the hard deadline (the budget less the archive's reserve)."""
    return a.budget_s - a.reserve_s - (time.monotonic() - T0)


def say(text: str) -> None:
    print(f"[{time.monotonic() - T0:5.0f} s] {text}", flush=True)


def load(a):
    """(data, configs): tiny synthetic data and scale, or PH2 at the course scale."""
    if a.tiny:
        tree = make_synthetic_ph2(cache_dir() / "gpu-check-tiny", n=12, seed=0, shape=(48, 64))
        cfgs = grid.configs("course", a.nets, a.losses, data=str(tree), **TINY)
        return load_dataset(tree, size=TINY["size"], progress=False), cfgs
    path = Path(a.data)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no such file; copy the data there before the call "
            "(seglib prepare PH2Dataset.tar.xz gpu/PH2-256.tar --size 256) and copy gpu/ with the repository"
        )
    cfgs = grid.configs("course", a.nets, a.losses, data=str(path))
    return load_dataset(path, size=cfgs[0].size, progress=False), cfgs


def bench(a, data, cfg, split) -> list[dict]:
    """The bench section: fp32 and automatic precision per net; prints rows and ratios."""
    tr = torch.as_tensor(split[0], dtype=torch.long)
    say(f"bench: {cfg.size} px, width {cfg.width}, depth {cfg.depth}, batch {cfg.batch_size}, "
        f"{a.warm_steps} warm + {a.steps} timed steps, BCE, augmentation on")  # fmt: skip
    print(f"{'net':8} {'precision':9} {'img/s':>9} {'ms/step':>9} {'peak GPU MB':>11} "
          f"{'save s':>7} {'warm s':>7}", flush=True)  # fmt: skip
    rows = []
    for net in a.nets:
        if left(a) <= 0:
            say("bench: out of time, the other nets are not measured")
            break
        pair = {}
        for prec in ("fp32", "auto"):
            save = a.out.parent if prec == "auto" else None
            r = gpu_bench.bench_net(
                net, prec, data, tr, cfg, a.warm_steps, a.steps, a.device, save_dir=save
            )
            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # the bench's model and optimizer are gone by now
            r["requested"] = prec
            pair[prec] = r
            rows.append(r)
            peak = "-" if r["peak_gpu_mb"] is None else f"{r['peak_gpu_mb']:.0f}"
            save_s = f"{r['save_s']:.2f}" if "save_s" in r else "-"
            print(f"{net:8} {prec + ('=' + r['precision'] if prec == 'auto' else ''):9} "
                  f"{r['img_s']:9.1f} {r['ms_step']:9.1f} {peak:>11} {save_s:>7} "
                  f"{r['warm_s']:7.1f}", flush=True)  # fmt: skip
        ratio = pair["auto"]["img_s"] / pair["fp32"]["img_s"]
        print(f"ratio {net}: auto / fp32 = {ratio:.2f}x img/s "
              f"(auto = {pair['auto']['precision']})", flush=True)  # fmt: skip
    return rows


def train_grid(a, data, cfgs, rows) -> dict:
    """Train the runs one at a time while they fit in the time left; return the run log."""
    split = split_indices(len(data), seed=cfgs[0].split_seed, fractions=cfgs[0].split_fractions)
    auto = {r["net"]: r for r in rows if r["requested"] == "auto"}
    img_s = {n: r["img_s"] for n, r in auto.items()}
    bench_epoch_s = {
        n: gpu_bench.epoch_s_from_bench(r["img_s"], r.get("save_s", 0), len(split[0]), len(split[1]))
        for n, r in auto.items()
    }  # fmt: skip
    log = {"finished": [], "skipped": [], "failed": [], "stopped": None, "not_started": None}
    per_epoch: dict[str, float] = {}
    for cfg in cfgs:
        name = store.run_name(cfg.net, cfg.loss, cfg.seed)
        run_dir = a.out / name
        grid.check_config(run_dir, cfg, lambda cfg=cfg: grid.split_identity(data, cfg))
        if (run_dir / "test.json").exists():
            log["skipped"].append(name)
            continue
        done = len(store.read_json(run_dir / "history.json", []) or [])
        done = done if (run_dir / "last.pt").exists() else 0
        est = gpu_bench.estimate_run_s(cfg.net, cfg.epochs - done, per_epoch, img_s, bench_epoch_s)
        if a.max_runs is not None and len(log["finished"]) >= a.max_runs:
            say(f"stop: --max-runs {a.max_runs} reached; next would be {name}")
            break
        if est is not None and est > left(a) and not a.partial:
            log["not_started"] = {"run": name, "estimated_s": est, "left_s": left(a)}
            say(f"stop: {name} would need ~{est:.0f} s (estimated), {left(a):.0f} s left")
            break
        say(f"run {name}: epochs {done + 1}-{cfg.epochs}"
            + (f", ~{est:.0f} s estimated" if est is not None else ""))  # fmt: skip
        t = time.monotonic()
        signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, max(left(a), 0.01))
        try:
            opts = FitOptions(device=a.device, precision=a.precision, quiet=True)
            res = train.fit(cfg, data, split, run_dir, opts)
        except OutOfTime:
            k = len(store.read_json(run_dir / "history.json", []) or [])
            log["stopped"] = {"run": name, "epochs_done": k, "epochs": cfg.epochs}
            say(f"stopped {name} at epoch {k}/{cfg.epochs}: out of time; resumable from "
                f"{run_dir / 'last.pt'} on this machine")  # fmt: skip
            break
        except RunFailed as e:
            log["failed"].append({"run": name, "message": str(e)})
            say(f"warning: {e}")
            continue
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        wall = time.monotonic() - t
        per_epoch[cfg.net] = wall / max(cfg.epochs - done, 1)
        keep = ("score", "iou", "dice", "train_images_per_s", "peak_gpu_memory_mb", "best_epoch")
        log["finished"].append(
            {"run": name, "wall_s": wall, "epochs_trained": cfg.epochs - done}
            | {k: res[k] for k in keep if k in res}
        )
        say(f"{name}: {wall:.0f} s for {cfg.epochs - done} epochs")
    n_done = sum(1 for c in cfgs if (a.out / store.run_name(c.net, c.loss, c.seed) / "test.json").exists())  # fmt: skip
    say(f"grid: {n_done} of {len(cfgs)} runs finished in {a.out} "
        f"({len(log['finished'])} this call, {len(log['skipped'])} skipped as finished)")  # fmt: skip
    return log


def main(argv=None) -> int:
    a = parse(argv)
    restored = gpu_results.restore(Path(a.restore), a.out)
    info = gpu_bench.facts(a.device)
    call = {
        "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "budget_s": a.budget_s,
        "tiny": a.tiny,
        "facts": info,
        "restored": restored,
    }
    say(
        f"gpu_check: budget {a.budget_s:.0f} s, {'tiny CPU fallback' if a.tiny else 'course scale'}"
    )
    where = (
        f"capability {info['capability']}, {info['sms']} SMs, {info['memory_gib']} GiB"
        if "capability" in info
        else f"{info['threads']} threads, CPU {info['cpu']}"
    )
    print(f"# device: {info['device']}, {where}; torch {info['torch']}, CUDA {info['cuda']}, "
          f"cuDNN {info['cudnn']}", flush=True)  # fmt: skip
    print(f"# precision auto -> {info['precision']}; fp32 may use TF32: convolutions "
          f"{info['tf32_conv']}, matmuls {info['tf32_matmul']}", flush=True)  # fmt: skip
    if restored:
        say(f"restored {len(restored)} finished runs from {a.restore}")
    try:
        data, cfgs = load(a)
        split = split_indices(len(data), seed=cfgs[0].split_seed)
        say(f"data: {len(data)} images at {cfgs[0].size} px ({a.data if not a.tiny else 'synthetic'})")  # fmt: skip
        rows = bench(a, data, cfgs[0], split) if "bench" in a.sections else []
        call["bench"] = rows
        if "grid" in a.sections:
            call["runs"] = train_grid(a, data, cfgs, rows)
    except BaseException as e:  # recorded in gpu_check.json, then raised as usual
        call["error"] = f"{type(e).__name__}: {e}"
        raise
    finally:
        call["wall_s"] = time.monotonic() - T0
        archive = Path(os.environ["OUT"]) if os.environ.get("OUT") else a.out.parent
        path = gpu_results.write(a.out, archive / "gpu_check.tar.gz", call)
        say(f"archive: {path} (JSON only)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
