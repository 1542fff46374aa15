"""Helpers shared by the tests: tiny runs, model checkpoints, artefact scenes.

Runs of a few seconds on the ``tiny_data`` fixture (tests/conftest.py) use :func:`tiny_config`.
"""

from __future__ import annotations

import os
import select
from pathlib import Path

import numpy as np
import torch

from seglib import models
from seglib.engine import checkpoint
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


def model_ckpt(path: Path, net="unet", width=4, depth=2, **cfg) -> Path:
    """A real seglib model checkpoint of a fresh net (no training needed to test loading)."""
    torch.manual_seed(0)
    model = models.build(net, width=width, depth=depth)
    config = tiny_config("synthetic", net=net, width=width, depth=depth).to_dict() | cfg
    norm = torch.tensor([[0.5] * 3, [0.25] * 3]).view(2, 1, 3, 1, 1)
    checkpoint.save(path, {"model": model.state_dict(), "config": config, "norm": norm, "epoch": 1})
    return path


def scene(h=60, w=80, box=(20, 35, 30, 50)):
    """Grey-pink skin with one dark rectangular lesion rows box[0]:box[1], cols box[2]:box[3];
    pixel values vary with position so any misplaced pixel shows."""
    yy, xx = np.mgrid[:h, :w]
    image = np.stack([180 + yy % 7, 140 + xx % 11, 120 + (yy + xx) % 5], -1).astype(np.uint8)
    mask = np.zeros((h, w), bool)
    mask[box[0] : box[1], box[2] : box[3]] = True
    image[mask] = (70, 45, 30)
    return image, mask


def rng(seed=0):
    """A fresh numpy generator."""
    return np.random.default_rng(seed)


def read_line(proc, timeout: float = 60.0) -> str:
    """The next line a child process prints, or a failed test (not a hang) after ``timeout``
    seconds without one."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise AssertionError(f"process {proc.pid} printed no line within {timeout:.0f} s")
    return proc.stdout.readline()


REPO = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("SEGLIB_REAL_DATA") or REPO / "data")
"""Where the optional real-data archives are looked for: ``PH2Dataset.tar.xz`` (full size) and
``PH2-256.tar`` (``seglib prepare``); the checkout's git-ignored ``data/`` unless
``SEGLIB_REAL_DATA`` names another folder. Tests that need them skip without them."""
