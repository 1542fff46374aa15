"""What one grid worker process does: set its threads, then train one run (``fit``).

Imports no torch at module level: :func:`init` must set the OpenMP environment before torch
starts its thread pool in a freshly spawned worker.
"""

from __future__ import annotations

import os
import signal
import traceback
from pathlib import Path

_DATA: dict = {}  # (data, size) -> dataset, loaded once per worker process


def init(threads: int, ignore_sigint: bool = True) -> None:
    """Worker start-up: ``threads`` sleeping OpenMP threads; Ctrl-C is the parent's to handle."""
    from seglib.environ import quiet_openmp

    os.environ["OMP_NUM_THREADS"] = str(threads)
    quiet_openmp()
    if ignore_sigint:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    torch.set_num_threads(threads)


def record_failure(run_dir: Path, text: str) -> dict:
    """Mark a run as failed by an unexpected error: ``failed.json`` (run, epoch, reason, as
    :mod:`seglib.engine.failures` writes it) and ``error.txt`` (the traceback); return the grid's record."""
    from seglib import store

    run_dir = Path(run_dir)
    reason = text.strip().splitlines()[-1] if text.strip() else "unknown error"
    try:
        epoch = len(store.read_json(run_dir / "history.json", [])) + 1
    except (OSError, ValueError):
        epoch = 0
    store.write_json(
        run_dir / "failed.json", {"run": run_dir.name, "epoch": epoch, "reason": reason}
    )
    store.atomic_write(run_dir / "error.txt", lambda f: f.write(text.encode()))
    message = f"{run_dir.name}: {reason} at epoch {epoch}; traceback in {run_dir / 'error.txt'}"
    return {"failed": {"message": message, "run": run_dir.name, "epoch": epoch, "reason": reason}}


def run_one(name: str, cfg: dict, out: str, device: str, precision: str, tta: bool) -> dict:
    """Train run ``name`` of ``cfg`` into ``out/name`` and return its test metrics; on any
    exception the run is marked failed (:func:`record_failure`) and the grid goes on."""
    from seglib.data.multi import split_of
    from seglib.data.ph2 import resolve_data
    from seglib.engine.failures import RunFailed
    from seglib.engine.options import FitOptions
    from seglib.engine.train import RunConfig, fit

    run_dir = Path(out) / name
    try:
        config = RunConfig(**cfg)
        key = (config.data, config.size)
        if key not in _DATA:
            _DATA[key] = resolve_data(config.data, config.size, quiet=True)
        data = _DATA[key]
        split = split_of(data, seed=config.split_seed, fractions=config.split_fractions)
        opts = FitOptions(device=device, precision=precision, tta=tta, quiet=True)
        result = fit(config, data, split, run_dir, opts)
    except RunFailed as e:  # NaN/inf loss: faults.check_finite wrote failed.json
        return {"failed": {"message": str(e), "run": e.run, "epoch": e.epoch, "reason": e.reason}}
    except Exception:
        return record_failure(run_dir, traceback.format_exc())
    return result


def run_one_ray(threads: int, task: dict) -> dict:
    """:func:`run_one` as a Ray task (Ray reuses worker processes: set the threads each time)."""
    init(threads, ignore_sigint=False)
    return run_one(**task)
