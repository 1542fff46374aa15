"""Parts of training that a whole-run test would not catch when wrong: the
augmentation moves image and mask together, the LR schedules follow their formulas, and
``export`` ships the run chosen by val IoU in fp16 with its JSON sidecar."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import tiny_config
from PIL import Image

from seglib import models, store
from seglib.augment.basic import augment
from seglib.cli import main
from seglib.engine import checkpoint
from seglib.engine.options import FitOptions
from seglib.engine.train import fit, scheduler
from seglib.infer.predict import export_weights, load_model

pytestmark = pytest.mark.usefixtures("one_thread")

DIHEDRAL = {  # the 8 flips/rotations of a square map, as numpy sees them
    "id": lambda a: a,
    "rot90": lambda a: np.rot90(a, 1),
    "rot180": lambda a: np.rot90(a, 2),
    "rot270": lambda a: np.rot90(a, 3),
    "flip-x": lambda a: a[:, ::-1],
    "flip-y": lambda a: a[::-1, :],
    "transpose": lambda a: a.T,
    "anti-transpose": lambda a: np.rot90(a, 2).T,
}


def test_augment_moves_image_and_mask_together():
    n, s = 64, 9
    g = torch.Generator().manual_seed(0)
    base = torch.rand(n, 1, s, s, generator=g)  # no symmetry: each map has one dihedral match
    y = (base > 0.5).float()
    x = torch.cat([base, 1 - base, torch.rand(n, 1, s, s, generator=g)], dim=1)
    xa, ya = augment(x, y, torch.Generator().manual_seed(1))
    seen = set()
    for i in range(n):
        img = xa[i, 0].numpy()
        # jitter is an affine map with positive contrast: correlation 1 with the moved image
        match = [k for k, t in DIHEDRAL.items()
                 if np.corrcoef(img.ravel(), t(base[i, 0].numpy()).ravel())[0, 1] > 0.9999]  # fmt: skip
        assert len(match) == 1, match
        seen.add(match[0])
        np.testing.assert_array_equal(ya[i, 0].numpy(), DIHEDRAL[match[0]](y[i, 0].numpy()))
        a = np.corrcoef(
            xa[i, 1].numpy().ravel(), DIHEDRAL[match[0]](1 - base[i, 0].numpy()).ravel()
        )
        assert a[0, 1] > 0.9999  # every channel moved the same way
    assert seen == set(DIHEDRAL)  # all 8 maps occur in 64 draws
    assert set(ya.unique().tolist()) <= {0.0, 1.0}


def _opt(lr):
    return torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def test_cosine_schedule_formula():
    cfg = tiny_config(".", epochs=10, lr=0.02, schedule="cosine")
    opt = _opt(cfg.lr)
    sched = scheduler(cfg, opt)
    eta_min = cfg.lr / 50
    for t in range(cfg.epochs + 1):
        want = eta_min + (cfg.lr - eta_min) * (1 + math.cos(math.pi * t / cfg.epochs)) / 2
        assert opt.param_groups[0]["lr"] == pytest.approx(want, rel=1e-9)
        opt.step()
        sched.step()


def test_plateau_halves_after_six_epochs_without_gain():
    cfg = tiny_config(".", lr=0.01, schedule="plateau")
    opt = _opt(cfg.lr)
    sched = scheduler(cfg, opt)
    lrs = []
    for val_iou in [0.5] * 7 + [0.6] + [0.6] * 6:
        opt.step()
        sched.step(val_iou)
        lrs.append(opt.param_groups[0]["lr"])
    # mode max, patience 5: the 6th epoch without gain (7th step) halves; 0.6 resets the count
    assert lrs == [0.01] * 6 + [0.005] * 7 + [0.0025]


def test_fit_steps_the_schedule_once_per_epoch(tiny_data, tmp_path):
    data, split, root = tiny_data
    cfg = tiny_config(root, epochs=3, lr=0.01, schedule="cosine")
    fit(cfg, data, split, tmp_path / "r", FitOptions(quiet=True, tta=False))
    lrs = [h["lr"] for h in store.read_json(tmp_path / "r" / "history.json")]
    eta = cfg.lr / 50
    want = [eta + (cfg.lr - eta) * (1 + math.cos(math.pi * t / 3)) / 2 for t in range(3)]
    assert lrs == pytest.approx(want, rel=1e-9)


def _finished_run(out, name, seed, val_ious, test_iou):
    torch.manual_seed(seed)
    run = out / name
    cfg = tiny_config("synthetic", seed=seed).to_dict()
    model = models.build("unet", width=4, depth=2)
    norm = torch.tensor([[0.4] * 3, [0.2] * 3]).view(2, 1, 3, 1, 1)
    checkpoint.save(run / "best.pt", {"model": model.state_dict(), "config": cfg, "norm": norm,
                                      "epoch": 1 + int(np.argmax(val_ious))})  # fmt: skip
    store.write_json(run / "config.json", cfg)
    store.write_json(run / "history.json", [{"epoch": i + 1, "val_iou": v, "seconds": 1.0}
                                            for i, v in enumerate(val_ious)])  # fmt: skip
    store.write_json(run / "test.json", {"iou": test_iou})
    return model


def test_export_ships_the_best_val_run_in_fp16_with_sidecar(tmp_path):
    out = tmp_path / "results"
    chosen = _finished_run(out, "unet_bce_s0", 0, [0.3, 0.9, 0.8], test_iou=0.1)
    _finished_run(out, "unet_dice_s1", 1, [0.5, 0.6], test_iou=0.95)  # best on test: not used
    dest = tmp_path / "w" / "best.pt"
    assert export_weights(out, dest) == out / "unet_bce_s0"
    raw = torch.load(dest, weights_only=True)
    for k, v in chosen.state_dict().items():
        want = v.half() if v.is_floating_point() else v
        assert raw["model"][k].dtype == want.dtype and torch.equal(raw["model"][k], want)
    assert raw["epoch"] == 2
    side = store.read_json(dest.with_suffix(".json"))
    assert side == {"run": "unet_bce_s0", **tiny_config("synthetic", seed=0).to_dict()}
    model, cfg, norm = load_model(dest)  # loads back, in float32
    assert next(model.parameters()).dtype == torch.float32 and cfg["seed"] == 0


def test_export_records_the_pipeline_and_predict_uses_it(tmp_path, monkeypatch):
    """`export --pipeline robust` stores it; predict/score/robustness take it by default
    (`--pipeline auto`) and an explicit --pipeline wins."""
    from seglib.infer import postprocess as pipeline_module
    from seglib.infer import predict as predict_module

    out = tmp_path / "results"
    _finished_run(out, "unet_bce_s0", 0, [0.3, 0.9], test_iou=0.1)
    dest = tmp_path / "w" / "best.pt"
    assert main(["export", str(out), "--dest", str(dest), "--pipeline", "robust"]) == 0
    _, cfg, _ = load_model(dest)
    assert cfg["pipeline"] == "robust"
    seen = []
    real = predict_module.predict_mask

    def spy(*args, pipeline=None, **kw):
        seen.append(pipeline_module.resolve(pipeline, args[1]))
        return real(*args, pipeline=pipeline, **kw)

    monkeypatch.setattr(predict_module, "predict_mask", spy)
    img = tmp_path / "a.png"
    Image.fromarray(np.full((40, 50, 3), 128, np.uint8)).save(img)
    for flag, want in (([], "robust"), (["--pipeline", "plain"], "plain")):
        argv = [
            "predict",
            str(img),
            "--weights",
            str(dest),
            "--out",
            str(tmp_path / "o"),
            "--no-tta",
        ]
        assert main(argv + flag) == 0
        assert seen[-1] == pipeline_module.PIPELINES[want]
    with pytest.raises(SystemExit):
        main(["export", str(out), "--dest", str(dest), "--pipeline", "fancy"])
