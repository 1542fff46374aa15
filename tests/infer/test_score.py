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
from seglib.data.overlay import EXPERT_RGB, MODEL_RGB
from seglib.data.ph2 import split_indices
from seglib.data.synth import make_synthetic_pairs
from seglib.engine import grid
from seglib.errors import FolderError
from seglib.infer.options import InferenceOptions
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
            grid.run_grid(cfgs, tmp / layout, grid.GridOptions(device="cpu", quiet=True))
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
    source, rows = score(weights, root, options=InferenceOptions(tta=tta))
    images = sorted(root.glob("*.jpg"))
    assert source == "SyntheticISIC" and [r["name"] for r in rows] == [p.stem for p in images]
    written = predict_files(weights, images, tmp_path / "masks", InferenceOptions(tta=tta))
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
    assert printed.startswith(
        "SyntheticFolders: paired folder: images in images/, masks in masks/ named <name>.png; "
        "8 cases (all)\n"
    )
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == [f"case_{i:04d}" for i in range(8)]
    ious = {r["name"]: float(r["iou"]) for r in rows}
    _, rows_api = score(weights, root, options=InferenceOptions(tta=False))
    assert [r["iou"] for r in rows_api] == list(ious.values())  # full precision in the CSV
    mean = np.mean(list(ious.values()))
    assert f"IoU               {mean:.3f}  95% CI" in printed and "Student t" in printed
    low = sum(v < 0.5 for v in ious.values())
    assert f"images with IoU below 0.5: {low} of 8 ({100 * low / 8:.1f}%)" in printed
    assert list(rows[0])[:8] == ["name", "iou", "dice", "score", "accuracy", "sensitivity",
                                 "specificity", "threshold_jaccard"]  # fmt: skip
    kept = [float(r["iou"]) if float(r["iou"]) >= 0.65 else 0.0 for r in rows]
    assert [float(r["threshold_jaccard"]) for r in rows] == pytest.approx(kept, abs=1e-6)
    for label in ("accuracy", "sensitivity", "specificity", "Jaccard>=0.65"):
        assert f"  {label:<17} " in printed
    worst = sorted(ious, key=lambda k: (ious[k], k))[:3]
    assert sorted(p.name for p in ov.iterdir()) == [
        *(f"0{i + 1}_{n}.png" for i, n in enumerate(worst)),
        "worst.png",
    ]  # the overlays and their page
    assert f"wrote {ov / 'worst.png'}" in printed
    with Image.open(ov / f"01_{worst[0]}.png") as im:
        assert im.size == (64, 48) and im.mode == "RGB"
        drawn = np.asarray(im)
    for rgb in (EXPERT_RGB, MODEL_RGB):  # the outlines and the legend's two colours
        assert (drawn == rgb).all(-1).any()


def test_score_a_ph2_folder_on_the_test_split(trained, synth_tree):
    _, results = trained["isic"]
    said = []
    source, rows = score(results / "unet_bce_s0" / "best.pt", synth_tree, split="test",
                         options=InferenceOptions(tta=False), log=said.append)  # fmt: skip
    names = [f"IMD00{i}" for i in range(1, 7)]
    assert source == "PH2" and said == [
        "PH2: PH2 layout (PH2 Dataset images/IMDnnn/IMDnnn_Dermoscopic_Image/, IMDnnn_lesion/); "
        "2 cases (test)"
    ]
    assert [r["name"] for r in rows] == [
        names[i] for i in split_indices(6, 0, (0.5, 0.25, 0.25))[2]
    ]


def _five_pairs(src: Path, dst: Path) -> Path:
    """The first 5 ISIC-layout pairs of ``src`` copied into ``dst`` (one folder)."""
    dst.mkdir()
    for i in range(5):
        for f in src.glob(f"ISIC_{i:07d}*"):
            (dst / f.name).write_bytes(f.read_bytes())
    return dst


def truncated_image(d: Path):
    path = d / "ISIC_0000002.jpg"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path, "cannot read image (image file is truncated", "re-download or re-export it"


def image_without_mask(d: Path):
    (d / "ISIC_0000002_segmentation.png").unlink()
    return d / "ISIC_0000002.jpg", "image without mask", "add its mask"


def mask_without_image(d: Path):
    (d / "ISIC_0000002.jpg").unlink()
    return d / "ISIC_0000002_segmentation.png", "mask without image", "add its image"


def mask_of_wrong_size(d: Path):
    Image.new("L", (10, 10)).save(d / "ISIC_0000002_segmentation.png")
    return (
        d / "ISIC_0000002_segmentation.png",
        "mask is 10x10 but its image is 64x48",
        ("use the mask made for this image, or remove the pair"),
    )


def unreadable_mask(d: Path):
    (d / "ISIC_0000002_segmentation.png").write_text("not a PNG")
    return d / "ISIC_0000002_segmentation.png", "unreadable or truncated image", "re-download"


BAD_SCORE = [truncated_image, image_without_mask, mask_without_image, mask_of_wrong_size,
             unreadable_mask]  # fmt: skip


@pytest.mark.parametrize("damage", BAD_SCORE, ids=[f.__name__ for f in BAD_SCORE])
def test_score_skips_a_bad_file_and_writes_the_rest(trained, tmp_path, capsys, damage):
    root, results = trained["isic"]
    data = _five_pairs(root, tmp_path / "bad")
    bad, words, remedy = damage(data)
    out, masks, ov = tmp_path / "out" / "s.csv", tmp_path / "masks", tmp_path / "ov"
    argv = ["score", "--data", str(data), "--weights", str(results / "unet_bce_s0" / "best.pt")]
    argv += ["--out", str(out), "--masks", str(masks), "--worst", "2", "--overlays", str(ov)]
    assert main([*argv, "--no-tta"]) == 1  # some files failed (2: nothing could be done)
    cap = capsys.readouterr()
    good = [f"ISIC_{i:07d}" for i in (0, 1, 3, 4)]
    with open(out, newline="") as f:
        assert [r["name"] for r in csv.DictReader(f)] == good
    assert sorted(p.name for p in masks.iterdir()) == [f"{n}_mask.png" for n in good]
    for p in masks.iterdir():
        with Image.open(p) as im:
            im.load()  # complete PNGs
            assert im.size == (64, 48)
    assert len(list(ov.glob("0*.png"))) == 2 and (ov / "worst.png").is_file()
    assert [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")] == []
    assert cap.out.startswith(
        "bad: paired folder: images and masks in the top folder, masks named "
        "<name>_segmentation.png; 5 cases (all)\n"
    )
    assert "bad: 4 images (all)" in cap.out and f"wrote {out}" in cap.out
    err = cap.err.strip().splitlines()
    assert err[0] == "error: 1 of 5 images not scored (nothing written for them):", err
    assert len(err) == 2 and err[1].startswith(f"  {bad}: ") and words in err[1], err
    assert err[1].endswith(remedy) or remedy in err[1], err


def test_score_with_every_file_bad_writes_nothing(trained, tmp_path, capsys):
    root, results = trained["isic"]
    data = _five_pairs(root, tmp_path / "bad")
    for p in data.glob("*.jpg"):
        p.write_bytes(p.read_bytes()[:100])
    out, masks = tmp_path / "s.csv", tmp_path / "masks"
    argv = ["score", "--data", str(data), "--weights", str(results / "unet_bce_s0" / "best.pt")]
    assert main([*argv, "--out", str(out), "--masks", str(masks), "--no-tta"]) == 1
    assert capsys.readouterr().err.startswith("error: 5 of 5 images not scored")
    assert not out.exists() and not masks.exists()


def test_score_api_without_a_skipped_list_raises_on_the_first_bad_file(trained, tmp_path):
    root, results = trained["isic"]
    data = _five_pairs(root, tmp_path / "bad")
    mask_of_wrong_size(data)
    with pytest.raises(FolderError, match="ISIC_0000002_segmentation.png: mask is 10x10"):
        score(results / "unet_bce_s0" / "best.pt", data, options=InferenceOptions(tta=False))


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


def test_split_pairs_follows_the_names_a_multi_dataset_model_recorded():
    from seglib.data.folder import Pair
    from seglib.infer.score import split_pairs

    pairs = [Pair(f"ISIC_{i:07d}", Path(f"{i}.jpg"), Path(f"{i}.png")) for i in range(10)]
    cfg = {"split_seed": 0, "split_fractions": None, "datasets": [
        {"name": "PH2", "val_names": ["IMD002"], "test_names": ["IMD003"]},
        {"name": "ISIC-512", "val_names": ["ISIC_0000001"],
         "test_names": ["ISIC_0000004", "ISIC_0000007", "ISIC_0000042"]},
    ]}  # fmt: skip
    # the copy scored here lacks ISIC_0000042 and holds cases the training copy lacked
    assert [p.name for p in split_pairs(pairs, "test", cfg)] == ["ISIC_0000004", "ISIC_0000007"]
    assert [p.name for p in split_pairs(pairs, "val", cfg)] == ["ISIC_0000001"]
    assert len(split_pairs(pairs, "train", cfg)) == 7
    # without recorded names: the seed's split of these pairs (50/25/25 of 10: 6/2/2)
    plain = split_pairs(pairs, "test", {"split_seed": 0, "split_fractions": None})
    assert len(plain) == 2


def test_score_skips_a_ph2_case_without_its_mask(trained, synth_tree, tmp_path):
    import shutil

    _, results = trained["isic"]
    root = tmp_path / "PH2Dataset"
    shutil.copytree(synth_tree, root)
    case = root / "PH2 Dataset images" / "IMD003"
    (case / "IMD003_lesion" / "IMD003_lesion.bmp").unlink()
    skipped: list[str] = []
    _, rows = score(
        results / "unet_bce_s0" / "best.pt",
        root,
        options=InferenceOptions(tta=False),
        skipped=skipped,
    )
    assert [r["name"] for r in rows] == ["IMD001", "IMD002", "IMD004", "IMD005", "IMD006"]
    assert skipped == [
        f"{case}: no lesion mask (expected a BMP/PNG/JPEG file in {case / 'IMD003_lesion'}); "
        "restore it from the PH2 archive, or remove the case folder"
    ]


def test_csv_names_an_archived_file_by_its_path_inside_the_archive(trained, tmp_path, monkeypatch):
    """A dataset given as an archive is extracted into the cache; the CSV names each file by
    its path inside the archive, never the cache's machine path. A folder's files keep theirs."""
    import tarfile

    root, results = trained["folders"]
    weights = results / "unet_bce_s0" / "best.pt"
    archive = tmp_path / "lesions.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(root, arcname="lesions")
    monkeypatch.setenv("SEGLIB_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "s.csv"
    assert main(["score", "--data", str(archive), "--weights", str(weights), "--out", str(out),
                 "--no-tta"]) == 0  # fmt: skip
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["image"] == "lesions/images/case_0000.png"
    assert rows[0]["mask"] == "lesions/masks/case_0000.png"
    assert str(tmp_path) not in out.read_text()
    _, direct = score(weights, root, options=InferenceOptions(tta=False))
    assert direct[0]["image"] == str(root / "images" / "case_0000.png")
