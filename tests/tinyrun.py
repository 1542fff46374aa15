"""Helpers for runs of a few seconds on the ``tiny_data`` fixture (tests/conftest.py)."""

from __future__ import annotations

from seglib.engine.train import RunConfig


def tiny_config(root, **kw) -> RunConfig:
    """UNet width 4, depth 2, 32 px, 2 epochs, batch 4, on the dataset at ``root``."""
    base = dict(net="unet", loss="bce", size=32, width=4, depth=2, epochs=2, batch_size=4)
    return RunConfig(**(base | {"data": str(root)} | kw))


def crash_at(monkeypatch, epoch: int):
    """Make ``fit`` raise KeyboardInterrupt at ``epoch`` (in its finite-loss check); returns a
    function that undoes it."""
    from seglib.engine import failures

    real = failures.check_finite

    def check(run_dir, e, row):
        if e == epoch:
            raise KeyboardInterrupt
        real(run_dir, e, row)

    monkeypatch.setattr(failures, "check_finite", check)
    return lambda: monkeypatch.setattr(failures, "check_finite", real)
