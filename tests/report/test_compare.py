"""report --compare: per-cell paired differences between two results folders (hand-worked)."""

import json

from seglib.cli import main
from seglib.report.compare import differences
from seglib.store import load_runs

NAMES = ["IMD002", "IMD003", "IMD004", "IMD005"]
OLD = [0.4, 0.6, 0.5, 0.5]  # mean 0.5


def write(out, net, loss, iou, names=NAMES):
    d = out / f"{net}_{loss}_s0"
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"net": net, "loss": loss, "seed": 0}))
    mean = sum(iou) / len(iou)
    test = {"iou": mean, "score": mean, "dice": mean, "names": names,
            "iou_per_image": iou, "score_per_image": iou, "dice_per_image": iou}  # fmt: skip
    (d / "test.json").write_text(json.dumps(test))


def folders(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    for net, loss in (("unet", "bce"), ("unet", "dice"), ("unet", "focal")):
        write(old, net, loss, OLD)
    write(new, "unet", "bce", [v + 0.1 for v in OLD])  # every image 0.1 higher
    write(new, "unet", "dice", OLD)  # the same numbers
    write(new, "unet", "focal", OLD, names=["IMD006", "IMD007", "IMD008", "IMD009"])
    return new, old


def test_differences_hand_worked(tmp_path):
    new, old = folders(tmp_path)
    d = differences(load_runs(new), load_runs(old), "iou")
    # +0.1 on each of 4 images: no spread, so the interval is the point; the exact permutation
    # test flips the 4 signs (16 ways) and only all + or all - reach |mean| 0.1: p = 2/16
    bce = d[("unet", "bce")]
    assert (round(bce.diff, 6), round(bce.low, 6), round(bce.high, 6)) == (0.1, 0.1, 0.1)
    assert abs(bce.p - 0.125) < 1e-9 and bce.distinct
    dice = d[("unet", "dice")]
    assert (dice.diff, dice.low, dice.high, dice.p, dice.distinct) == (0, 0, 0, 1.0, False)
    assert d[("unet", "focal")] is None  # other test images: nothing to pair


def test_report_compare_prints_each_cell(tmp_path, capsys):
    new, old = folders(tmp_path)
    assert main(["report", str(new), "--compare", str(old)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"# {new} vs {old}\n")
    (row,) = [
        line for line in out.split("## Test IoU")[1].splitlines() if line.startswith("| UNet")
    ]
    assert row == (
        "| UNet | 0.600 vs 0.500: +0.100 [+0.100, +0.100], p 0.125 "
        "| 0.500 vs 0.500: +0.000 [+0.000, +0.000], p 1.000 ≈ "
        "| 0.500 vs 0.500: other test images |"
    )
    assert (
        "1 of 2 cells reproduced (interval contains 0); differ: UNet+BCE. "
        "Not paired (other test images): UNet+Focal." in out
    )
    assert not (new / "REPORT.md").exists()  # a comparison writes nothing
    assert main(["report", str(new), "--compare", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: no such results folder" in capsys.readouterr().err
