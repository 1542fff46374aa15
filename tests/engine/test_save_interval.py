"""How often ``fit`` writes its checkpoints (``train.save_due``): every epoch on a CPU; on a GPU,
where an epoch can take less time than writing ``last.pt``, only as often as keeps writing under a
share of the run's time. Fewer writes must change nothing but what a crash loses."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import crash_at, tiny_config

from seglib.engine import checkpoint
from seglib.engine.options import FitOptions
from seglib.engine.train import fit, save_due

pytestmark = pytest.mark.usefixtures("one_thread")
NEVER = 1e-12  # a share no write can keep to after the first: writes at epoch 1 and the last


def test_save_due_hand_worked():
    assert save_due(0.0, None, 0.1)  # nothing written yet: write
    assert save_due(0.0, 5.0, None)  # no share: every epoch
    # share 0.1 and a 1 s write: due once 9 s have passed since it, 1 / (9 + 1) = 0.1
    assert not save_due(8.5, 1.0, 0.1)
    assert save_due(9.5, 1.0, 0.1)
    # share 0.5 and a 0.2 s write: due after 0.2 s
    assert not save_due(0.1, 0.2, 0.5) and save_due(0.3, 0.2, 0.5)


def _spy(monkeypatch) -> list[tuple[str, int]]:
    """Record (file name, epoch) of every checkpoint written."""
    written, real = [], checkpoint.save

    def spy(path, obj):
        written.append((path.name, obj["epoch"]))
        real(path, obj)

    monkeypatch.setattr(checkpoint, "save", spy)
    return written


def _weights(path) -> dict:
    return checkpoint.load_checkpoint(path)["model"]


def test_cpu_writes_every_epoch_by_default(tiny_data, tmp_path, monkeypatch):
    data, split, root = tiny_data
    written = _spy(monkeypatch)
    fit(
        tiny_config(root, epochs=4),
        data,
        split,
        tmp_path / "run",
        FitOptions(quiet=True, tta=False),
    )
    assert [e for name, e in written if name == "last.pt"] == [1, 2, 3, 4]


def test_sparse_writes_give_the_same_run(tiny_data, tmp_path, monkeypatch):
    """last.pt at epochs 1 and 6 only; best.pt holds the best epoch's weights, kept in memory
    until the next write, identical to the every-epoch run's; so are the test metrics."""
    data, split, root = tiny_data
    cfg = tiny_config(root, epochs=6, seed=0, lr=0.02)  # its val IoU peaks at epoch 4
    every = fit(cfg, data, split, tmp_path / "every", FitOptions(quiet=True, tta=False))
    written = _spy(monkeypatch)
    sparse = fit(
        cfg, data, split, tmp_path / "sparse", FitOptions(quiet=True, tta=False, save_share=NEVER)
    )
    assert [e for name, e in written if name == "last.pt"] == [1, 6]
    history = json.loads((tmp_path / "sparse" / "history.json").read_text())
    ious = [h["val_iou"] for h in history]
    best_epoch = ious.index(max(ious)) + 1  # the first epoch with the highest val IoU
    assert best_epoch not in (1, 6)  # so best.pt had to be kept between writes
    assert checkpoint.load_checkpoint(tmp_path / "sparse" / "best.pt")["epoch"] == best_epoch
    a, b = _weights(tmp_path / "every" / "best.pt"), _weights(tmp_path / "sparse" / "best.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    for k in ("iou", "dice", "score", "iou_per_image"):
        assert sparse[k] == every[k], k


def test_crash_between_writes_resumes_from_the_last_one(tiny_data, tmp_path, monkeypatch):
    """A crash at epoch 4 loses epochs 2-3 (last.pt is from epoch 1); the resumed run replays
    them and ends bit-identical to an uninterrupted one."""
    data, split, root = tiny_data
    cfg = tiny_config(root, epochs=5, seed=0, lr=0.02)
    whole = fit(cfg, data, split, tmp_path / "whole", FitOptions(quiet=True, tta=False))
    undo = crash_at(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, data, split, tmp_path / "cut", FitOptions(quiet=True, tta=False, save_share=NEVER))
    assert checkpoint.load_checkpoint(tmp_path / "cut" / "last.pt", "resume")["epoch"] == 1
    undo()
    cut = fit(
        cfg, data, split, tmp_path / "cut", FitOptions(quiet=True, tta=False, save_share=NEVER)
    )
    assert len(json.loads((tmp_path / "cut" / "history.json").read_text())) == 5
    a, b = _weights(tmp_path / "whole" / "best.pt"), _weights(tmp_path / "cut" / "best.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert cut["iou_per_image"] == whole["iou_per_image"]
