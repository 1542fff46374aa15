"""Training faults that stop one run but not the grid: :class:`RunFailed` and its record.

A run whose loss becomes NaN or infinite (e.g. an absurd ``--lr``) is stopped before that epoch
is checkpointed, so ``last.pt`` and ``best.pt`` keep the last good state; ``failed.json`` in the
run folder records why and when. The grid catches :class:`RunFailed`, goes on with the other
runs and raises :class:`GridFailed` at the end (the CLI exits 2).
"""

from __future__ import annotations

import functools
import inspect
import math
from pathlib import Path

from seglib import store
from seglib.engine.runlock import RunLock

FAILED = "failed.json"


class RunFailed(ValueError):
    """One run stopped on a training fault; ``failed.json`` in its folder says why.
    Attributes ``run`` (folder name), ``epoch`` and ``reason`` repeat that record."""

    def __init__(self, message: str, run: str = "", epoch: int = 0, reason: str = ""):
        super().__init__(message)
        self.run, self.epoch, self.reason = run, epoch, reason


class GridFailed(ValueError):
    """Some runs of a grid failed (each with a :class:`RunFailed`); the others finished."""

    def __init__(self, failures: list[RunFailed], total: int):
        self.failures = failures
        what = ", ".join(f"{f.run} ({f.reason} at epoch {f.epoch})" for f in failures)
        super().__init__(
            f"{len(failures)} of {total} runs failed: {what}; the others went on "
            f"(each failed run's folder holds a {FAILED}); fix the cause and rerun the same "
            "command: it retries only those runs"
        )


def check_finite(run_dir: Path, epoch: int, row: dict) -> None:
    """Stop the run (write ``failed.json``, raise RunFailed) if this epoch's train or val loss
    is NaN or infinite; call it before the epoch is checkpointed."""
    bad = {k: row[k] for k in ("train_loss", "val_loss") if not math.isfinite(row[k])}
    if not bad:
        return
    run_dir = Path(run_dir)
    what = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in bad.items())
    reason = f"non-finite loss ({what})"
    store.write_json(run_dir / FAILED, {"run": run_dir.name, "epoch": epoch, "reason": reason})
    kept = (
        f"its last good checkpoint (epoch {epoch - 1}) is kept in {run_dir}"
        if epoch > 1
        else f"no checkpoint written in {run_dir}"
    )
    raise RunFailed(
        f"{run_dir.name}: {reason} at epoch {epoch}; run stopped, {kept} (lower --lr?)",
        run=run_dir.name,
        epoch=epoch,
        reason=reason,
    )


def guarded(fit):
    """Decorate ``fit(cfg, data, split, out_dir, ...)``: hold the run folder's lock
    (:class:`seglib.engine.runlock.RunLock`) for the whole run, and clear a stale ``failed.json``
    once the run has finished."""
    sig = inspect.signature(fit)

    @functools.wraps(fit)
    def wrapper(*args, **kwargs):
        out_dir = Path(sig.bind(*args, **kwargs).arguments["out_dir"])
        with RunLock(out_dir):
            result = fit(*args, **kwargs)
            (out_dir / FAILED).unlink(missing_ok=True)
        return result

    return wrapper
