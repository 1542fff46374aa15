"""The experiment grid: nets x losses x seeds, named presets, resumable results store.

Re-running the same grid resumes it: finished runs (``test.json`` present) are skipped, an
interrupted run continues from its ``last.pt``; a run folder whose saved config differs from the
requested one is refused with a clear message.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import losses, models, store
from .data import fetch_ph2, load_ph2, make_synthetic_ph2, split_indices
from .faults import GridFailed, RunFailed
from .fetch import cache_dir
from .train import RunConfig, fit, test_checkpoint

NETS = ("segnet", "unet", "unet2")
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


PRESETS = {
    # Synthetic data, tiny scale: the README's main job and CI's end-to-end check.
    "smoke": Preset("smoke", "synthetic", size=64, width=8, epochs=4, batch_size=16, depth=3),
    # Real PH2 at 128 px, width 8: the reference study, feasible on a 2-core CPU (~100 min as two
    # 1-thread processes). 200 epochs: at 100 the runs were still improving (results/ablation).
    # Weight decay 0 where it beat 1e-4 on val IoU (scripts/choose_on_val.py, README).
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
    ),
    # The original course scale, for GPU users.
    "course": Preset("course", "download", size=256, width=64, epochs=200, batch_size=25, lr=1e-3),
}


# Config keys that name things without changing the run (the data path may move between machines).
LABELS = ("data", "preset")


class ConfigMismatch(ValueError):
    """A run folder holds a run with a different config."""


def resolve_data(data: str, size: int, quiet: bool = False):
    """Load the dataset named by ``data``: a path (folder or archive), "synthetic" or "download"."""
    if data == "synthetic":
        root = make_synthetic_ph2(cache_dir() / "synthetic", n=200, seed=0)
    elif data == "download":
        root = fetch_ph2(cache_dir() / "ph2")
    else:
        root = Path(data).expanduser()
        if not root.exists():
            raise FileNotFoundError(f"--data {data}: no such file or folder")
    return load_ph2(root, size=size, progress=None if not quiet else False)


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
    if overrides.get("weight_decay") is not None:
        per_cell = {}  # an explicit weight decay applies to every run
    base.update({k: v for k, v in overrides.items() if v is not None})
    k = 2 ** base["depth"]
    if base["size"] % k or base["size"] < k:
        raise ValueError(f"--size {base['size']}: must be a multiple of 2**depth = {k}")
    wd = base["weight_decay"]
    return [
        RunConfig(net=n, loss=lo, seed=s, **(base | {"weight_decay": per_cell.get((n, lo), wd)}))
        for n in nets
        for lo in losses_
        for s in seeds
    ]


def check_config(run_dir: Path, cfg: RunConfig) -> None:
    """Refuse to mix a run folder with a different config."""
    saved = store.read_json(run_dir / "config.json")
    if saved is None:
        return
    want = cfg.to_dict()
    diff = {k: (saved.get(k), v) for k, v in want.items() if k not in LABELS and saved.get(k) != v}
    if diff:
        what = ", ".join(f"{k}: saved {a!r} vs requested {b!r}" for k, (a, b) in diff.items())
        raise ConfigMismatch(
            f"{run_dir} holds a run with another config ({what}); "
            "use another --out or delete that folder"
        )


def run_grid(
    cfgs: list[RunConfig],
    out: Path,
    device: str = "auto",
    quiet: bool | None = None,
    tta: bool = True,
) -> list[dict]:
    """Train every config into ``out/<net>_<loss>_s<seed>/`` (resuming) and return test results.

    A run that fails (:class:`seglib.faults.RunFailed`) does not stop the others;
    :class:`seglib.faults.GridFailed` is raised at the end if any failed."""
    out = Path(out)
    quiet = bool(os.environ.get("CI")) if quiet is None else quiet
    for cfg in cfgs:  # refuse before any work is done
        check_config(out / store.run_name(cfg.net, cfg.loss, cfg.seed), cfg)
    datasets, results, failed = {}, [], []
    t0 = time.perf_counter()
    for cfg in cfgs:
        run_dir = out / store.run_name(cfg.net, cfg.loss, cfg.seed)
        if store.read_json(run_dir / "test.json") is not None:
            results.append(store.read_json(run_dir / "test.json"))
            continue
        key = (cfg.data, cfg.size)
        if key not in datasets:
            datasets[key] = resolve_data(cfg.data, cfg.size, quiet)
        data = datasets[key]
        split = split_indices(len(data), seed=cfg.split_seed)
        try:
            results.append(fit(cfg, data, split, run_dir, device=device, quiet=quiet, tta=tta))
        except RunFailed as e:  # NaN/inf loss: this run stops, the grid goes on
            failed.append(e)
            print(f"warning: {e}", file=sys.stderr, flush=True)
    if quiet:
        print(f"grid: {len(cfgs)} runs in {time.perf_counter() - t0:.0f} s -> {out}", flush=True)
    if failed:
        raise GridFailed(failed, len(cfgs))
    return results


def retest(
    out: Path, data: str | None = None, device: str = "auto", tta: bool = True
) -> list[dict]:
    """Re-evaluate every finished run's ``best.pt`` in ``out`` on its test split (rewriting
    ``test.json``), e.g. to add test-time augmentation to runs tested without it.

    ``data`` overrides the dataset path saved in each run's config (data moves between machines).
    """
    runs = [r for r in store.load_runs(out) if r["test"] and (r["dir"] / "best.pt").exists()]
    if not runs:
        raise FileNotFoundError(f"{out}: no finished run with a best.pt checkpoint")
    datasets, results = {}, []
    for r in runs:
        cfg = r["config"]
        key = (data or cfg["data"], cfg["size"])
        if key not in datasets:
            datasets[key] = resolve_data(key[0], key[1], quiet=True)
        split = split_indices(len(datasets[key]), seed=cfg["split_seed"])
        results.append(test_checkpoint(r["dir"], datasets[key], split, device=device, tta=tta))
    return results
