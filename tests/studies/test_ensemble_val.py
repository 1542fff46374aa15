"""studies/ensemble_val.py: the members' logits averaged; members that need other inputs refused."""

from __future__ import annotations

import pytest
import torch
from helpers import model_ckpt

from studies import ensemble_val as mod


class Const(torch.nn.Module):
    def __init__(self, v):
        super().__init__()
        self.v = v

    def forward(self, x):
        return torch.full((len(x), 1, *x.shape[2:]), self.v)


def test_mean_of_members_hand_worked():
    out = mod.MeanLogits([Const(1.0), Const(-4.0), Const(6.0)])(torch.zeros(2, 3, 4, 5))
    assert out.shape == (2, 1, 4, 5) and torch.all(out == 1.0)  # (1 - 4 + 6) / 3


def test_members_of_another_size_are_refused(tmp_path):
    a = model_ckpt(tmp_path / "a.pt", size=32)
    b = model_ckpt(tmp_path / "b.pt", size=48)
    model, cfg, _ = mod.load_members([a, model_ckpt(tmp_path / "c.pt", size=32)])
    assert len(model.nets) == 2 and cfg["size"] == 32
    with pytest.raises(ValueError, match=r"b\.pt: another training size"):
        mod.load_members([a, b])
