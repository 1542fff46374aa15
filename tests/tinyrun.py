"""Helpers for runs of a few seconds on the ``tiny_data`` fixture (tests/conftest.py)."""

from __future__ import annotations

from seglib.train import RunConfig


def tiny_config(root, **kw) -> RunConfig:
    """UNet width 4, depth 2, 32 px, 2 epochs, batch 4, on the dataset at ``root``."""
    base = dict(net="unet", loss="bce", size=32, width=4, depth=2, epochs=2, batch_size=4)
    return RunConfig(**(base | {"data": str(root)} | kw))
