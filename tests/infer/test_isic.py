"""seglib.infer.isic against the official ISIC scorer (``isic-challenge-scoring``) on PNG folders."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglib.infer.isic import METRIC_NAMES, binarise, macro_average
from seglib.infer.isic import image_metrics as isic_metrics

TOL = 1e-6


def _disk(h: int, w: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


def _u8(mask: np.ndarray) -> np.ndarray:
    return np.where(mask, 255, 0).astype(np.uint8)


def _flat_range(h: int, w: int, start: int, stop: int) -> np.ndarray:
    m = np.zeros(h * w, dtype=bool)
    m[start:stop] = True
    return m.reshape(h, w)


def _cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """image id -> (truth uint8, prediction uint8)."""
    rng = np.random.default_rng(2018)
    grey = np.array([0, 126, 127, 128, 129, 130, 255], dtype=np.uint8)
    full = np.full((25, 40), 255, np.uint8)
    return {
        # partial overlap, non-square
        "ISIC_0000001": (_u8(_disk(40, 60, 20, 25, 12)), _u8(_disk(40, 60, 22, 31, 13))),
        # empty truth, non-empty prediction
        "ISIC_0000002": (np.zeros((32, 48), np.uint8), _u8(_disk(32, 48, 10, 10, 5))),
        # non-empty truth, empty prediction
        "ISIC_0000003": (_u8(_disk(48, 32, 24, 16, 9)), np.zeros((48, 32), np.uint8)),
        # both empty
        "ISIC_0000004": (np.zeros((30, 30), np.uint8), np.zeros((30, 30), np.uint8)),
        # grey levels around 128 (128 is background, 129 foreground)
        "ISIC_0000005": (np.resize(grey, (21, 26)), np.resize(np.roll(grey, 1), (21, 26))),
        # Jaccard exactly 0.65 = 13/20 (kept: threshold is >=)
        "ISIC_0000006": (_u8(_flat_range(10, 10, 0, 16)), _u8(_flat_range(10, 10, 3, 20))),
        # Jaccard 12/19 < 0.65 (threshold_jaccard -> 0)
        "ISIC_0000007": (_u8(_flat_range(9, 11, 0, 15)), _u8(_flat_range(9, 11, 3, 19))),
        # all-foreground truth (specificity undefined), partial prediction
        "ISIC_0000008": (full, _u8(_disk(25, 40, 12, 20, 10))),
        # random grey noise on both sides
        "ISIC_0000009": (
            rng.integers(0, 256, (37, 53), dtype=np.uint8),
            rng.integers(0, 256, (37, 53), dtype=np.uint8),
        ),
        # perfect prediction
        "ISIC_0000010": (_u8(_disk(33, 45, 16, 22, 11)), _u8(_disk(33, 45, 16, 22, 11))),
    }


def _name(image_id: str) -> str:
    return f"{image_id}_segmentation.png"


@pytest.fixture(scope="module")
def official():
    return pytest.importorskip("isic_challenge_scoring")


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("isic")
    truth_dir, pred_dir = root / "truth", root / "pred"
    truth_dir.mkdir()
    pred_dir.mkdir()
    for image_id, (truth, pred) in _cases().items():
        Image.fromarray(truth).save(truth_dir / _name(image_id))
        Image.fromarray(pred).save(pred_dir / _name(image_id))
    return truth_dir, pred_dir


def _ours(truth_dir: Path, pred_dir: Path) -> dict[str, dict[str, float]]:
    out = {}
    for truth_file in sorted(truth_dir.glob("ISIC_*.png")):
        truth = binarise(np.asarray(Image.open(truth_file)))
        pred = binarise(np.asarray(Image.open(pred_dir / truth_file.name)))
        out[truth_file.name[:12]] = isic_metrics(pred, truth)
    return out


def _assert_close(ours: dict[str, float], theirs: dict[str, float], where: str) -> None:
    assert set(theirs) == set(METRIC_NAMES), where
    for name in METRIC_NAMES:
        a, b = float(ours[name]), float(theirs[name])
        if math.isnan(a) or math.isnan(b):
            assert math.isnan(a) and math.isnan(b), f"{where} {name}: ours {a}, official {b}"
        else:
            assert abs(a - b) <= TOL, f"{where} {name}: ours {a}, official {b}"


def test_per_image_matches_official(official, folders, tmp_path):
    truth_dir, pred_dir = folders
    ours = _ours(truth_dir, pred_dir)
    assert len(ours) == len(_cases())
    for image_id, metrics in ours.items():
        # The official scorer only exposes macro averages: score a one-image folder pair.
        t, p = tmp_path / image_id / "truth", tmp_path / image_id / "pred"
        t.mkdir(parents=True)
        p.mkdir()
        shutil.copy(truth_dir / _name(image_id), t)
        shutil.copy(pred_dir / _name(image_id), p)
        score = official.SegmentationScore.from_dir(t, p)
        _assert_close(metrics, score.macro_average.to_dict(), image_id)


def test_macro_average_matches_official(official, folders):
    truth_dir, pred_dir = folders
    score = official.SegmentationScore.from_dir(truth_dir, pred_dir)
    ours = macro_average(_ours(truth_dir, pred_dir).values())
    _assert_close(ours, score.macro_average.to_dict(), "macro")
    assert abs(score.overall - ours["threshold_jaccard"]) <= TOL


# Expected values read from isic_challenge_scoring 5.6.0 (metrics.py); runs without it.
Z = np.zeros((4, 5), bool)
F = np.ones((4, 5), bool)
P = _flat_range(4, 5, 0, 3)


@pytest.mark.parametrize(
    ("pred", "truth", "expected"),
    [
        (Z, Z, (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)),  # both empty
        (P, Z, (0.85, 1.0, 0.85, 0.0, 0.0, 0.0)),  # empty truth
        (Z, P, (0.85, 0.0, 1.0, 0.0, 0.0, 0.0)),  # empty prediction
        (P, F, (0.15, 0.15, 1.0, 0.15, 0.0, 6 / 23)),  # all-foreground truth
    ],
    ids=["both_empty", "empty_truth", "empty_pred", "full_truth"],
)
def test_degenerate_cases(pred, truth, expected):
    got = isic_metrics(pred, truth)
    assert list(got) == list(METRIC_NAMES)
    assert [got[k] for k in METRIC_NAMES] == pytest.approx(expected, abs=TOL)


def test_binarise_threshold_is_strictly_greater_than_128():
    values = np.array([[0, 127, 128, 129, 255]], np.uint8)
    assert binarise(values).tolist() == [[False, False, False, True, True]]
    with pytest.raises(TypeError):
        binarise(values / 255.0)


def test_score_reports_the_official_scorers_numbers(official, tmp_path, monkeypatch):
    """``seglib score`` on an ISIC-layout folder (images + *_segmentation.png truths): every
    per-image ISIC number in its rows equals what the official scorer computes from the same
    truth file and the prediction ``score --masks`` wrote; IoU and Dice equal its Jaccard and
    Dice wherever the truth is plainly 0/255 (the empty truth and prediction cases included)."""
    from seglib.infer import score as score_module
    from seglib.infer.options import InferenceOptions
    from seglib.infer.predict import DEFAULT_WEIGHTS
    from seglib.infer.score import ScoreOutputs

    data, written = tmp_path / "data", tmp_path / "pred"
    data.mkdir()
    preds = {}
    for image_id, (truth, pred) in _cases().items():
        h, w = truth.shape
        Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(data / f"{image_id}.png")
        Image.fromarray(truth).save(data / _name(image_id))
        preds[(h, w)] = pred > 128
    monkeypatch.setattr(
        score_module, "predict_mask", lambda m, c, n, image, **kw: preds[image.shape[:2]]
    )
    _, rows = score_module.score(
        DEFAULT_WEIGHTS,
        data,
        options=InferenceOptions(tta=False),
        outputs=ScoreOutputs(masks=written),
    )
    assert len(rows) == len(_cases())
    ambiguous = {"ISIC_0000005", "ISIC_0000009"}  # grey truths: 128 is lesion only for seglib
    for row in rows:
        t, p = tmp_path / "one" / row["name"] / "truth", tmp_path / "one" / row["name"] / "pred"
        t.mkdir(parents=True)
        p.mkdir()
        shutil.copy(data / _name(row["name"]), t)
        shutil.copy(written / f"{row['name']}_mask.png", p)
        theirs = official.SegmentationScore.from_dir(t, p).macro_average.to_dict()
        for key in ("accuracy", "sensitivity", "specificity", "threshold_jaccard"):
            assert abs(row[key] - theirs[key]) <= TOL, (row["name"], key, row[key], theirs[key])
        if row["name"] not in ambiguous:
            assert abs(row["iou"] - theirs["jaccard"]) <= TOL, row["name"]
            assert abs(row["dice"] - theirs["dice"]) <= TOL, row["name"]
