"""Fine-tuning (``RunConfig.init`` / ``run --init CKPT``): a run starts from another model's
weights and input normalisation, and refuses a checkpoint that does not fit or that was trained
on another split of the same data."""

from __future__ import annotations

import pytest
import torch
from helpers import crash_at, model_ckpt, tiny_config

from seglib.cli import parser, run_configs
from seglib.engine import checkpoint
from seglib.engine.options import FitOptions
from seglib.engine.train import fit

pytestmark = pytest.mark.usefixtures("one_thread")


def test_run_starts_from_the_init_weights_and_norm(tiny_data, tmp_path):
    data, split, root = tiny_data
    init = model_ckpt(tmp_path / "init.pt", data=str(root))
    cfg = tiny_config(root, seed=5, epochs=1, lr=0.0, weight_decay=0.0, init=str(init))
    fit(cfg, data, split, tmp_path / "run", FitOptions(quiet=True, tta=False))
    want = checkpoint.load_checkpoint(init)
    got = checkpoint.load_checkpoint(tmp_path / "run" / "best.pt")
    weights = [k for k in want["model"] if "running_" not in k and "num_batches" not in k]
    assert len(weights) > 10
    for k in weights:  # lr 0: not one weight moved (batch-norm statistics do, in train mode)
        v = want["model"][k]
        assert torch.equal(got["model"][k].float(), v.float()), k
    # the init's normalisation (0.5, 0.25), not the tiny data's own statistics
    assert torch.allclose(got["norm"].flatten(), torch.tensor([0.5] * 3 + [0.25] * 3))


def test_init_of_another_width_is_refused_before_anything_is_written(tiny_data, tmp_path):
    data, split, root = tiny_data
    init = model_ckpt(tmp_path / "wide.pt", width=8, data=str(root))
    with pytest.raises(
        checkpoint.CheckpointError,
        match=r"wide\.pt: cannot start a unet of width 4.*holds a unet of width 8",
    ):
        fit(
            tiny_config(root, init=str(init)), data, split, tmp_path / "run", FitOptions(quiet=True)
        )
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_init_trained_on_another_split_of_the_same_data_is_refused(tiny_data, tmp_path):
    data, split, root = tiny_data
    init = model_ckpt(tmp_path / "init.pt", data=str(root), split_seed=1)
    with pytest.raises(checkpoint.CheckpointError, match="val or test images"):
        fit(
            tiny_config(root, init=str(init)), data, split, tmp_path / "run", FitOptions(quiet=True)
        )


def test_cli_records_the_init_as_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = parser().parse_args(["run", "--init", "w.pt", "--nets", "unet", "--losses", "bce"])
    (cfg,) = run_configs(a)
    assert cfg.init == str(tmp_path / "w.pt")


def _weights(state: dict) -> dict:
    return {k: v.float().clone() for k, v in state.items() if v.is_floating_point()}


def test_swa_best_pt_is_the_mean_of_the_last_epochs(tiny_data, tmp_path, monkeypatch):
    """epochs 3, swa 2: best.pt holds the mean of the weights (and batch-norm statistics) after
    epochs 2 and 3, averaged here by hand from the last.pt each epoch saves."""
    data, split, root = tiny_data
    saved = []
    real_save = checkpoint.save

    def spy(path, obj):
        if path.name == "last.pt":
            saved.append(_weights(obj["model"]))
        real_save(path, obj)

    monkeypatch.setattr(checkpoint, "save", spy)
    fit(
        tiny_config(root, epochs=3, swa=2),
        data,
        split,
        tmp_path / "run",
        FitOptions(quiet=True, tta=False),
    )
    assert len(saved) == 3
    best = _weights(checkpoint.load_checkpoint(tmp_path / "run" / "best.pt")["model"])
    assert best.keys() == saved[0].keys()
    for k in best:
        want = (saved[1][k] + saved[2][k]) / 2
        assert torch.allclose(best[k], want, atol=1e-6), k
    assert any(not torch.allclose(best[k], saved[2][k]) for k in best)  # not the last epoch


def test_swa_run_resumed_mid_average_ends_as_an_uninterrupted_one(tiny_data, tmp_path, monkeypatch):
    data, split, root = tiny_data
    cfg = tiny_config(root, epochs=3, swa=2)
    fit(cfg, data, split, tmp_path / "whole", FitOptions(quiet=True, tta=False))

    undo = crash_at(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, data, split, tmp_path / "cut", FitOptions(quiet=True, tta=False))
    undo()
    fit(cfg, data, split, tmp_path / "cut", FitOptions(quiet=True, tta=False))
    a = _weights(checkpoint.load_checkpoint(tmp_path / "whole" / "best.pt")["model"])
    b = _weights(checkpoint.load_checkpoint(tmp_path / "cut" / "best.pt")["model"])
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_swa_longer_than_the_run_is_refused():
    from seglib.engine.grid import configs

    with pytest.raises(ValueError, match="--swa 5: must be between 0 and the epochs .4."):
        configs("smoke", epochs=4, swa=5)
    assert configs("smoke", epochs=4, swa=4)[0].swa == 4
