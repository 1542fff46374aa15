"""The experiment grid: nets x losses x seeds, named presets, resumable results store.

Re-running the same grid resumes it: finished runs (``test.json`` present) are skipped, an
interrupted run continues from its ``last.pt``; a run folder whose saved config or data (its
name and fingerprint, ``seglib.data.identity``) differs from the requested one is refused with a
clear message.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from seglib import losses, models, store
from seglib.data.multi import split_of
from seglib.data.ph2 import data_missing, resolve_data
from seglib.engine.evaluate import evaluate_checkpoint
from seglib.engine.failures import GridFailed, RunFailed
from seglib.engine.guard import LABELS, ConfigMismatch, check_config, split_identity
from seglib.engine.options import FitOptions, GridOptions
from seglib.engine.train import RunConfig, fit
from seglib.runtime import runtime

__all__ = [
    "LABELS",
    "ConfigMismatch",
    "GridOptions",
    "check_config",
    "configs",
    "retest",
    "run_grid",
    "split_identity",
]

NETS = models.STUDY_NETS
LOSSES = ("bce", "dice", "focal", "correlation")


@dataclass(frozen=True)
class Preset:
    """Named training scale; any field can be overridden per call."""

    name: str
    data: str
    size: int
    width: int
    epochs: int
    batch_size: int
    lr: float = 3e-3
    depth: int = 4
    weight_decay: float = 1e-4  # Adam's L2 term (torch.optim.Adam weight_decay)
    # Per-run exceptions to weight_decay as (net, loss, value), chosen on val (README).
    cell_weight_decay: tuple[tuple[str, str, float], ...] = ()
    # Per-net recipes as (net, ((field, value), ...)): a pretrained net's own epochs and rates.
    net_recipes: tuple[tuple[str, tuple[tuple[str, object], ...]], ...] = ()


PRESETS = {
    # Synthetic data, tiny scale: the README's main job and CI's end-to-end check.
    "smoke": Preset("smoke", "synthetic", size=64, width=8, epochs=4, batch_size=16, depth=3),
    # Real PH2 at 128 px, width 8: the reference study, feasible on a 2-core CPU (~100 min as two
    # 1-thread processes). 200 epochs: at 100 the runs were still improving (results/ablation).
    # Weight decay 0 where it beat 1e-4 on val IoU (studies/choose_on_val.py, README).
    "cpu": Preset(
        "cpu",
        "download",
        size=128,
        width=8,
        epochs=200,
        batch_size=8,
        cell_weight_decay=(
            ("segnet", "bce", 0.0),
            ("segnet", "dice", 0.0),
            ("segnet", "focal", 0.0),
            ("unet2", "dice", 0.0),
        ),
        # The pretrained net fine-tunes whole at lr 1e-3: on val (seed 0, BCE, 40 epochs) it
        # beat a 10x smaller encoder rate (best val IoU 0.894 vs 0.885); both peaked at epoch
        # 23, so 30 epochs (docs/study/pretrained.md).
        net_recipes=(("effunet", (("epochs", 30), ("lr", 1e-3))),),
    ),
    # The original course scale, for GPU users.
    # The pretrained net keeps the cpu recipe, with smp's default decoder (width 16).
    "course": Preset(
        "course",
        "download",
        size=256,
        width=64,
        epochs=200,
        batch_size=25,
        lr=1e-3,
        net_recipes=(("effunet", (("epochs", 30), ("width", 16))),),
    ),
}


def configs(
    preset: str = "smoke",
    nets=NETS,
    losses_=LOSSES,
    seeds=(0,),
    **overrides,
) -> list[RunConfig]:
    """The grid's run configs, in run order (net, loss, seed)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    for n in nets:
        if n not in models.NAMES:
            raise ValueError(f"unknown net {n!r}; choose from {', '.join(models.NAMES)}")
    for lo in losses_:
        if lo not in losses.NAMES:
            raise ValueError(f"unknown loss {lo!r}; choose from {', '.join(losses.NAMES)}")
    base = dataclasses.asdict(PRESETS[preset])
    base["preset"] = base.pop("name")
    per_cell = {(n, lo): wd for n, lo, wd in base.pop("cell_weight_decay")}
    recipes = {n: dict(fields) for n, fields in base.pop("net_recipes")}
    asked = {k for k, v in overrides.items() if v is not None}
    if overrides.get("weight_decay") is not None:
        per_cell = {}  # an explicit weight decay applies to every run
    base.update({k: v for k, v in overrides.items() if v is not None})
    k = 2 ** base["depth"]
    if base["size"] % k or base["size"] < k:
        raise ValueError(f"--size {base['size']}: must be a multiple of 2**depth = {k}")
    if not 0 <= base.get("swa", 0) <= base["epochs"]:
        raise ValueError(
            f"--swa {base['swa']}: must be between 0 and the epochs ({base['epochs']})"
        )
    wd = base["weight_decay"]

    def recipe(n: str) -> dict:  # what the command line asks for wins over a net's recipe
        return {k: v for k, v in recipes.get(n, {}).items() if k not in asked}

    return [
        RunConfig(
            net=n,
            loss=lo,
            seed=s,
            **(base | {"weight_decay": per_cell.get((n, lo), wd)} | recipe(n)),
        )
        for n in nets
        for lo in losses_
        for s in seeds
    ]


def auto_jobs(device: str = "auto") -> int:
    """``--jobs auto``: one run per core on CPU (``python -m seglib bench``: two 1-thread runs
    side by side beat one 2-thread run at a time on 2 cores), one at a time on a GPU."""
    from seglib.environ import cores

    on_gpu = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    return 1 if on_gpu else cores()


def plan(cfgs: list[RunConfig], out: Path) -> dict[str, list[RunConfig]]:
    """The grid's runs by state: "finished" (``test.json``), "resumed" (``last.pt``), "new"."""
    states: dict[str, list[RunConfig]] = {"finished": [], "resumed": [], "new": []}
    for cfg in cfgs:
        run_dir = Path(out) / store.run_name(cfg.net, cfg.loss, cfg.seed)
        if (run_dir / "test.json").exists():
            states["finished"].append(cfg)
        elif (run_dir / "last.pt").exists():
            states["resumed"].append(cfg)
        else:
            states["new"].append(cfg)
    return states


def run_grid(cfgs: list[RunConfig], out: Path, options: GridOptions | None = None) -> list[dict]:
    """Train every config into ``out/<net>_<loss>_s<seed>/`` (resuming) and return test results.

    ``options`` (:class:`seglib.engine.options.GridOptions`; None: its defaults): ``jobs`` > 1
    (or "auto", :func:`auto_jobs`) runs that many runs side by side in worker processes with
    ``threads`` threads each (default: the free cores split evenly,
    :func:`seglib.environ.choose_threads`; one run at a time gets the free cores);
    ``executor="ray"`` runs them as Ray tasks (on the cluster at ``ray_address``, else a local
    Ray). A failed run (:class:`seglib.engine.failures.RunFailed`, or any error in a worker) does not stop
    the others; :class:`seglib.engine.failures.GridFailed` is raised at the end.
    """
    o = options or GridOptions()
    out = Path(out)
    quiet = bool(os.environ.get("CI")) if o.quiet is None else o.quiet
    jobs = _checked_jobs(cfgs, o.device, o.jobs, o.executor)
    loaded = _loader(quiet)
    for cfg in cfgs:  # refuse before any work is done
        run_dir = out / store.run_name(cfg.net, cfg.loss, cfg.seed)
        check_config(run_dir, cfg, lambda cfg=cfg: split_identity(loaded(cfg), cfg))
    states = plan(cfgs, out)
    todo = [c for c in cfgs if c not in states["finished"]]
    side_by_side = o.executor == "ray" or (jobs > 1 and len(todo) > 1)
    choice = _threads(jobs if side_by_side else 1, o.threads, side_by_side)
    rt = runtime(o.device, o.precision)
    print(_header(cfgs, states, o.executor, jobs, rt, choice), flush=True)
    t0 = time.perf_counter()
    for cfg in todo:
        loaded(cfg)
    results = {
        name: store.read_json(out / name / "test.json") for name in _names(states["finished"])
    }
    if side_by_side:
        tasks = [_task(c, out, o) for c in todo]
        done = _run_side_by_side(tasks, out, o, jobs, choice.threads, rt, quiet)
        for t, r in zip(tasks, done):
            results[t["name"]] = {"failed": RunFailed(**r["failed"])} if "failed" in r else r
    else:
        for cfg, name in zip(todo, _names(todo)):
            results[name] = _fit_or_fail(cfg, loaded(cfg), out / name, o.fit_options(quiet))
    if quiet:
        print(f"grid: {len(cfgs)} runs in {time.perf_counter() - t0:.0f} s -> {out}", flush=True)
    failed = [r["failed"] for r in results.values() if "failed" in r]
    if failed:
        raise GridFailed(failed, len(cfgs))
    return [results[name] for name in _names(cfgs)]


def _names(cfgs: list[RunConfig]) -> list[str]:
    """The run folders' names of ``cfgs``."""
    return [store.run_name(c.net, c.loss, c.seed) for c in cfgs]


def _checked_jobs(cfgs: list[RunConfig], device: str, jobs: int | str, executor: str) -> int:
    """``jobs`` as a number; FileNotFoundError for missing data, ValueError for a bad option."""
    for data in sorted({c.data for c in cfgs}):  # an error even when every run is finished
        if (missing := data_missing(data)) is not None:
            raise FileNotFoundError(
                f"--data {missing}: no such file or folder; check the path, or use --data "
                "synthetic or --data download"
            )
    if jobs == "auto":
        jobs = auto_jobs(device)
    if jobs < 1:
        raise ValueError(f"--jobs {jobs}: must be at least 1")
    if executor not in ("local", "ray"):
        raise ValueError(f"--executor {executor}: choose local or ray")
    return jobs


def _loader(quiet: bool):
    """``loaded(cfg)``: the config's dataset, fetched and cached once, before any worker starts."""
    datasets: dict = {}

    def loaded(cfg):
        if (cfg.data, cfg.size) not in datasets:
            datasets[cfg.data, cfg.size] = resolve_data(cfg.data, cfg.size, quiet)
        return datasets[cfg.data, cfg.size]

    return loaded


def _threads(jobs: int, threads: int | None, side_by_side: bool):
    """Each run's threads (:func:`seglib.environ.machine_threads`), set here for one at a time."""
    from seglib.environ import machine_threads

    choice = machine_threads(jobs, threads)
    if not side_by_side:
        torch.set_num_threads(choice.threads)
    return choice


def _header(cfgs: list[RunConfig], states: dict, executor: str, jobs: int, rt, choice) -> str:
    """The line that opens a grid: its runs by state, how they run, and on what."""
    per_run = choice.threads
    info = rt.describe() | {"threads": per_run}
    return (
        f"grid: {len(cfgs)} runs: {len(states['finished'])} finished (skipped), "
        f"{len(states['resumed'])} resumed, {len(states['new'])} new; "
        + (f"{executor} executor, " if executor == "ray" else f"{jobs} at a time, ")
        + f"device {info['device']}, precision {info['precision']}, {per_run} threads per run "
        f"({choice.reason}), "
        f"CPU {info['cpu']} (native bf16: {'yes' if info['cpu_native_bf16'] else 'no'})"
    )


def _task(cfg: RunConfig, out: Path, o: GridOptions) -> dict:
    """One run as a worker's task (:mod:`seglib.engine.parallel`)."""
    return {
        "name": store.run_name(cfg.net, cfg.loss, cfg.seed),
        "cfg": cfg.to_dict(),
        "out": str(out),
        "device": o.device,
        "precision": o.precision,
        "tta": o.tta,
    }


def _run_side_by_side(tasks, out, o: GridOptions, jobs, per_run, rt, quiet) -> list:
    """Each task's result, the runs side by side: as Ray tasks or in local worker processes."""
    from seglib.engine import parallel

    if o.executor == "ray":
        gpus = 1 / jobs if rt.device.type == "cuda" else 0
        return parallel.run_ray(tasks, out, per_run, gpus, o.ray_address, quiet)
    return parallel.run_local(tasks, out, jobs, per_run, quiet)


def _fit_or_fail(cfg: RunConfig, data, run_dir: Path, options: FitOptions) -> dict:
    """One run in this process: its test results, or ``{"failed": RunFailed}`` on a NaN/inf loss."""
    split = split_of(data, seed=cfg.split_seed, fractions=cfg.split_fractions)
    try:
        return fit(cfg, data, split, run_dir, options)
    except RunFailed as e:
        print(f"warning: {e}", file=sys.stderr, flush=True)
        return {"failed": e}


def retest(
    out: Path,
    data: str | None = None,
    device: str = "auto",
    tta: bool = True,
    precision: str = "auto",
) -> list[dict]:
    """Re-evaluate every finished run's ``best.pt`` in ``out`` on its test split (rewriting
    ``test.json``), e.g. to add test-time augmentation to runs tested without it.

    ``data`` overrides the dataset path saved in each run's config (data moves between machines).
    ``precision`` "auto" re-tests each run in the precision it was trained in (where this device
    has it), so a re-test reproduces the numbers of the training machine.
    """
    runs = [r for r in store.load_runs(out) if r["test"] and (r["dir"] / "best.pt").exists()]
    if not runs:
        raise FileNotFoundError(
            f"{out}: no finished run with a best.pt checkpoint; give the --out folder of a "
            "finished `seglib run`"
        )
    on_cuda = runtime(device).device.type == "cuda"
    datasets, results = {}, []
    for r in runs:
        cfg = r["config"]
        key = (data or cfg["data"], cfg["size"])
        if key not in datasets:
            datasets[key] = resolve_data(key[0], key[1], quiet=True)
        split = split_of(
            datasets[key], seed=cfg["split_seed"], fractions=cfg.get("split_fractions")
        )
        used = precision
        if used == "auto":
            used = (cfg.get("runtime") or {}).get("precision", "auto")
            if used == "fp16" and not on_cuda:
                used = "auto"
        results.append(
            evaluate_checkpoint(
                r["dir"], datasets[key], split, device=device, tta=tta, precision=used
            )
        )
    return results
