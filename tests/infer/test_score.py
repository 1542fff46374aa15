"""Training, reporting and scoring on paired folders: ``run --data FOLDER``, the report's dataset
name, and ``score`` checked against ``predict``'s written masks scored by hand in numpy."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglib import store
from seglib.cli import main
from seglib.data.ph2 import split_indices
from seglib.data.synth import make_synthetic_pairs
from seglib.engine import grid
from seglib.infer.predict import predict_files
from seglib.infer.score import mean_ci, score
from seglib.report.markdown import write_report

pytestmark = pytest.mark.usefixtures("one_thread")

T_975_2 = 4.302653  # Student t, 97.5% quantile, 2 degrees of freedom (printed tables)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Both paired layouts (8 cases of 48x64) and a 2-epoch UNet trained on each by run_grid
    with an explicit split; returns {layout: (dataset root, results folder)}."""
    import os

    import torch

    tmp = tmp_path_factory.mktemp("score")
    before, threads = os.environ.get("SEGLIB_CACHE"), torch.get_num_threads()
    os.environ["SEGLIB_CACHE"] = str(tmp / "cache")
    torch.set_num_threads(1)
    try:
        out = {}
        for layout in ("isic", "folders"):
            root = make_synthetic_pairs(tmp / "data", n=8, seed=2, layout=layout, shape=(48, 64))
            cfgs = grid.configs("smoke", nets=("unet",), losses_=("bce",), epochs=8, batch_size=2, lr=0.01,
                                      size=32, width=4, data=str(root),
                                      split_fractions=[0.5, 0.25, 0.25])  # fmt: skip
            grid.run_grid(cfgs, tmp / layout, device="cpu", quiet=True)
            out[layout] = (root, tmp / layout)
        yield out
    finally:
        torch.set_num_threads(threads)
        if before is None:
            os.environ.pop("SEGLIB_CACHE", None)
        else:
            os.environ["SEGLIB_CACHE"] = before


def by_hand(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """IoU, Dice and course score of two bool masks, from the definitions (DESIGN.md)."""
    inter, p, t = int((pred & truth).sum()), int(pred.sum()), int(truth.sum())
    union = p + t - inter
    iou = inter / union if union else 1.0
    dice = 2 * inter / (p + t) if p + t else 1.0
    return iou, dice, math.ceil(min(max(20 * (iou - 0.5) - 1e-6, 0), 10)) / 10


@pytest.mark.parametrize("tta", [True, False], ids=["tta", "plain"])
def test_score_agrees_with_predicts_masks_scored_by_hand(trained, tmp_path, tta):
    root, results = trained["isic"]
    weights = results / "unet_bce_s0" / "best.pt"
    source, rows = score(weights, root, tta=tta)
    images = sorted(root.glob("*.jpg"))
    assert source == "SyntheticISIC" and [r["name"] for r in rows] == [p.stem for p in images]
    written = predict_files(weights, images, tmp_path / "masks", tta=tta)
    inside = 0
    for row, image, mask in zip(rows, images, written):
        pred = np.asarray(Image.open(mask)) > 127
        with Image.open(root / f"{image.stem}_segmentation.png") as im:
            truth = np.asarray(im) > 127
        assert pred.shape == truth.shape == (48, 64)
        iou, dice, course = by_hand(pred, truth)
        assert row["iou"] == pytest.approx(iou, rel=1e-6, abs=1e-7)  # float32 metrics
        assert row["dice"] == pytest.approx(dice, rel=1e-6, abs=1e-7)
        assert row["score"] == course
        inside += 0 < iou < 1
    assert inside >= 2  # not a degenerate all-or-nothing prediction


def test_both_layouts_train_and_report_their_name(trained):
    for root, results in trained.values():
        test = store.read_json(results / "unet_bce_s0" / "test.json")
        cfg = store.read_json(results / "unet_bce_s0" / "config.json")
        assert test["dataset"] == root.name and cfg["split_fractions"] == [0.5, 0.25, 0.25]
        names = sorted(p.stem for p in root.rglob("*.jpg")) or sorted(
            p.stem for p in (root / "images").glob("*.png")
        )
        assert test["names"] == [names[i] for i in split_indices(8, 0, (0.5, 0.25, 0.25))[2]]
        text = write_report(results, results / "REPORT.md")
        assert text.startswith(f"# Results on {root.name}\n")
        assert "ORIGINAL" not in text and "Compared with the original" not in text


def test_dataset_of():
    assert store.dataset_of([]) == "PH2"
    assert store.dataset_of([{"test": {"dataset": "ISIC"}}, {"test": None}]) == "ISIC"
    assert store.dataset_of([{"test": {"dataset": "ISIC"}}, {"test": {"iou": 0.5}}]) == "ISIC + PH2"


def test_mean_ci_hand_worked():
    mean, low, high = mean_ci([0.5, 0.6, 0.7])  # s = 0.1, sem = 0.1 / sqrt(3)
    half = T_975_2 * 0.1 / math.sqrt(3)
    assert (mean, low, high) == pytest.approx((0.6, 0.6 - half, 0.6 + half), abs=1e-6)
    assert mean_ci([0.0, 0.0, 0.3])[1] == 0.0  # clipped to the metrics' range
    assert mean_ci([0.4, 0.4]) == (0.4, 0.4, 0.4)
    assert all(math.isnan(v) for v in mean_ci([0.4])[1:])


def test_score_cli_csv_summary_and_worst_overlays(trained, tmp_path, capsys):
    root, results = trained["folders"]
    weights = results / "unet_bce_s0" / "best.pt"
    out, ov = tmp_path / "s.csv", tmp_path / "ov"
    argv = ["score", "--data", str(root), "--weights", str(weights), "--out", str(out)]
    assert main([*argv, "--no-tta", "--worst", "3", "--overlays", str(ov)]) == 0
    printed = capsys.readouterr().out
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == [f"case_{i:04d}" for i in range(8)]
    ious = {r["name"]: float(r["iou"]) for r in rows}
    _, rows_api = score(weights, root, tta=False)
    assert [r["iou"] for r in rows_api] == list(ious.values())  # full precision in the CSV
    mean = np.mean(list(ious.values()))
    assert f"IoU               {mean:.3f}  95% CI" in printed and "Student t" in printed
    assert list(rows[0])[:8] == ["name", "iou", "dice", "score", "accuracy", "sensitivity",
                                 "specificity", "threshold_jaccard"]  # fmt: skip
    kept = [float(r["iou"]) if float(r["iou"]) >= 0.65 else 0.0 for r in rows]
    assert [float(r["threshold_jaccard"]) for r in rows] == pytest.approx(kept, abs=1e-6)
    for label in ("accuracy", "sensitivity", "specificity", "Jaccard>=0.65"):
        assert f"  {label:<17} " in printed
    worst = sorted(ious, key=lambda k: (ious[k], k))[:3]
    assert sorted(p.name for p in ov.iterdir()) == [
        f"0{i + 1}_{n}.png" for i, n in enumerate(worst)
    ]
    with Image.open(ov / f"01_{worst[0]}.png") as im:
        assert im.size == (64, 48) and im.mode == "RGB"


def test_score_a_ph2_folder_on_the_test_split(trained, synth_tree):
    _, results = trained["isic"]
    source, rows = score(results / "unet_bce_s0" / "best.pt", synth_tree, split="test", tta=False)
    names = [f"IMD00{i}" for i in range(1, 7)]
    assert source == "PH2"
    assert [r["name"] for r in rows] == [
        names[i] for i in split_indices(6, 0, (0.5, 0.25, 0.25))[2]
    ]


def test_score_bad_mask_exits_2_naming_it(trained, tmp_path, capsys):
    root, results = trained["isic"]
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in root.glob("ISIC_000000[01]*"):
        (bad / f.name).write_bytes(f.read_bytes())
    Image.new("L", (10, 10)).save(bad / "ISIC_0000001_segmentation.png")
    argv = ["score", "--data", str(bad), "--weights", str(results / "unet_bce_s0" / "best.pt")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ISIC_0000001_segmentation.png: mask is 10x10" in err[0]


def test_synth_layout_cli_and_run_split(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SEGLIB_CACHE", str(tmp_path / "cache"))
    assert main(["synth", str(tmp_path / "d"), "--layout", "folders", "--n", "4"]) == 0
    top = Path(capsys.readouterr().out.strip())
    assert top == tmp_path / "d" / "SyntheticFolders"
    assert sorted(p.name for p in (top / "masks").iterdir()) == [
        f"case_{i:04d}.png" for i in range(4)
    ]
    with pytest.raises(SystemExit) as e:
        main(["run", "--data", str(top), "--split", "0.5,0.5"])
    assert e.value.code == 2
    assert "fractions summing to 1" in capsys.readouterr().err
