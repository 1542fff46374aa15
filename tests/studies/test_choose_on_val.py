"""studies/choose_on_val.py: per cell, the run with the higher best val IoU wins (B must beat A)."""

import json

from studies import choose_on_val


def write(out, net, loss, val_ious, test_score):
    d = out / f"{net}_{loss}_s0"
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps(dict(net=net, loss=loss, seed=0)))
    hist = [dict(epoch=i + 1, val_iou=v) for i, v in enumerate(val_ious)]
    (d / "history.json").write_text(json.dumps(hist))
    (d / "test.json").write_text(json.dumps(dict(score=test_score)))


def test_choose_by_best_val_never_test(tmp_path, capsys):
    a, b, dest = tmp_path / "a", tmp_path / "b", tmp_path / "chosen"
    write(a, "unet", "bce", [0.5, 0.80, 0.7], test_score=0.1)
    write(b, "unet", "bce", [0.81, 0.6], test_score=0.0)  # higher best val, lower test: wins
    write(a, "unet", "dice", [0.7], test_score=0.0)
    write(b, "unet", "dice", [0.7], test_score=0.9)  # a tie keeps A, whatever the test says
    choose_on_val.main([str(a), str(b), "--copy-to", str(dest)])
    out = capsys.readouterr().out
    assert "| UNet | 0.800 / 0.810 → B | 0.700 / 0.700 → A |" in out
    assert "cells: (('unet', 'bce'),)" in out
    chosen = {p.name: json.loads((p / "test.json").read_text()) for p in dest.iterdir()}
    assert chosen == {"unet_bce_s0": {"score": 0.0}, "unet_dice_s0": {"score": 0.0}}
