"""``run --refit``: the final model of a recipe chosen on val learns from the train and val
images; with nothing left to choose on, best.pt is the last epoch, and nothing later treats the
val images as unseen (val numbers, fine-tunes, the robustness suite)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import model_ckpt, tiny_config

from seglib.cli import parser, run_configs
from seglib.engine import checkpoint
from seglib.engine.grid import ConfigMismatch, check_config
from seglib.engine.options import FitOptions
from seglib.engine.train import fit
from seglib.infer.predict import export_weights
from seglib.robustness import suite

pytestmark = pytest.mark.usefixtures("one_thread")


def test_refit_trains_on_train_and_val_and_keeps_the_last_epoch(tiny_data, tmp_path):
    data, split, root = tiny_data
    run = tmp_path / "run"
    result = fit(
        tiny_config(root, epochs=3, refit=True), data, split, run, FitOptions(quiet=True, tta=False)
    )
    best = checkpoint.load_checkpoint(run / "best.pt")
    last = checkpoint.load_checkpoint(run / "last.pt", "resume")
    assert best["epoch"] == 3
    assert all(torch.equal(best["model"][k], last["model"][k]) for k in last["model"])
    # input normalisation over the 4 train and 1 val images, computed here with numpy
    x = data.images[[0, 1, 2, 3, 4]].numpy().astype(np.float64) / 255  # (N, 3, H, W)
    want = np.concatenate([x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3), ddof=1)])
    assert np.allclose(best["norm"].flatten().numpy(), want, atol=1e-5)
    assert "val" not in result and "val" not in json.loads((run / "test.json").read_text())
    # exported alone it is the run to ship; beside another run nothing can choose between them
    assert export_weights(tmp_path, tmp_path / "w.pt") == run
    fit(
        tiny_config(root, epochs=1),
        data,
        split,
        tmp_path / "other",
        FitOptions(quiet=True, tta=False),
    )
    with pytest.raises(ValueError, match="2 runs, refits among them"):
        export_weights(tmp_path, tmp_path / "w.pt")


def test_a_refit_does_not_start_a_run_that_chooses_on_val(tiny_data, tmp_path):
    data, split, root = tiny_data
    init = model_ckpt(tmp_path / "refit.pt", data=str(root), refit=True)
    with pytest.raises(checkpoint.CheckpointError, match=r"refit\.pt: a refit, trained on .*val"):
        fit(tiny_config(root, init=str(init)), data, split, tmp_path / "a", FitOptions(quiet=True))
    cfg = tiny_config(root, init=str(init), refit=True, epochs=1)
    assert fit(cfg, data, split, tmp_path / "b", FitOptions(quiet=True, tta=False))["iou"] >= 0


def test_robustness_of_a_refit_only_on_test(tmp_path):
    """The suite and the two benchmarks that score on val refuse a refit there."""
    from studies import ensemble_val, pipeline_choice

    ckpt = model_ckpt(tmp_path / "refit.pt", refit=True)
    other = model_ckpt(tmp_path / "other.pt")
    no_data = tmp_path / "no-data"
    why = r"refit\.pt: a refit, trained on the val images too"
    with pytest.raises(ValueError, match=why):
        suite.evaluate(ckpt, no_data, split="val")
    with pytest.raises(ValueError, match=why):
        pipeline_choice.compare(ckpt, no_data, "val", ["robust"], ["clean"])
    with pytest.raises(ValueError, match=r"other\.pt: a refit"):  # the ensemble holds a refit
        ensemble_val.main([str(other), str(ckpt), "--data", str(no_data)])


def test_cli_flag_and_folders_older_than_the_key(tmp_path):
    a = parser().parse_args(["run", "--refit", "--nets", "unet", "--losses", "bce"])
    (cfg,) = run_configs(a)
    assert cfg.refit is True
    (plain,) = run_configs(parser().parse_args(["run", "--nets", "unet", "--losses", "bce"]))
    assert plain.refit is False
    saved = plain.to_dict()
    del saved["refit"], saved["swa"]  # a run folder written before these keys existed
    (tmp_path / "config.json").write_text(json.dumps(saved))
    check_config(tmp_path, plain)  # missing keys read as their defaults: the same run
    with pytest.raises(ConfigMismatch, match="refit: saved False vs requested True"):
        check_config(tmp_path, cfg)
