"""What a training run holds while it trains: :class:`TrainState`."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TrainState:
    """The training loop's state: net, loss, optimiser, schedule, gradient scaler, the run's
    CPU generator (every random draw) and the weight average (None without ``swa``)."""

    model: torch.nn.Module
    loss_fn: object
    opt: torch.optim.Optimizer
    sched: object
    scaler: object
    gen: torch.Generator
    swa: object = None
