"""Metrics against hand-computed values on tiny masks."""

import pytest
import torch

from seglib import metrics


def mask(rows):
    """(1, 1, H, W) float mask from a list of 0/1 rows."""
    return torch.tensor(rows, dtype=torch.float32)[None, None]


def counted(n_inter, n_pred_only, n_target_only, size=2000):
    """1x1xsize masks with given |P n T|, |P \\ T|, |T \\ P| (IoU = n_inter / sum of all)."""
    p = torch.zeros(size, dtype=torch.bool)
    t = torch.zeros(size, dtype=torch.bool)
    p[:n_inter] = t[:n_inter] = True
    p[n_inter : n_inter + n_pred_only] = True
    t[n_inter + n_pred_only : n_inter + n_pred_only + n_target_only] = True
    return p.view(1, 1, 1, size), t.view(1, 1, 1, size)


def test_hand_computed_2x2():
    # P = 3 pixels, T = 2 pixels, overlap 1: IoU 1/4, Dice 2/5.
    p = mask([[1, 1], [1, 0]])
    t = mask([[0, 1], [0, 1]])
    assert metrics.iou(p, t).tolist() == pytest.approx([0.25])
    assert metrics.dice(p, t).tolist() == pytest.approx([0.4])


def test_hand_computed_4x4():
    # P: left 2 columns (8 px); T: top 2 rows (8 px); overlap 4 -> IoU 4/12, Dice 8/16.
    p = mask([[1, 1, 0, 0]] * 4)
    t = mask([[1, 1, 1, 1]] * 2 + [[0, 0, 0, 0]] * 2)
    assert metrics.iou(p, t).item() == pytest.approx(1 / 3)
    assert metrics.dice(p, t).item() == pytest.approx(0.5)
    assert metrics.course_score(p, t).item() == 0.0


def test_empty_cases_and_mixed_batch():
    e = mask([[0, 0], [0, 0]])
    full = mask([[1, 1], [1, 1]])
    half = mask([[1, 1], [0, 0]])
    pred = torch.cat([e, e, full, half, full])
    target = torch.cat([e, full, e, full, full])
    out = metrics.summarise(pred, target)
    assert out["iou"].tolist() == pytest.approx([1.0, 0.0, 0.0, 0.5, 1.0])
    assert out["dice"].tolist() == pytest.approx([1.0, 0.0, 0.0, 2 / 3, 1.0])
    assert out["score"].tolist() == pytest.approx([1.0, 0.0, 0.0, 0.0, 1.0])
    for v in out.values():
        assert v.shape == (5,) and v.dtype == torch.float32


def test_input_types_agree():
    g = torch.Generator().manual_seed(0)
    p = torch.rand(3, 1, 8, 8, generator=g) > 0.5
    t = torch.rand(3, 1, 8, 8, generator=g) > 0.5
    inter = (p & t).sum((1, 2, 3)).double()
    union = (p | t).sum((1, 2, 3)).double()
    expected = (inter / union).float()
    for cast in (lambda x: x, lambda x: x.float(), lambda x: x.long(), lambda x: x.to(torch.uint8)):
        assert torch.equal(metrics.iou(cast(p), cast(t)), expected)
    assert torch.equal(metrics.iou(p.to(torch.uint8) * 255, t), expected)  # 0/255 masks


def test_from_logits():
    logits = torch.tensor([-1.0, 0.0, 1e-4, 3.0]).view(1, 1, 2, 2)
    assert metrics.from_logits(logits).flatten().tolist() == [False, False, True, True]


@pytest.mark.parametrize(
    "iou_value, expected",
    [
        (0.0, 0.0),
        (0.5, 0.0),
        (0.5001, 0.1),
        (0.549, 0.1),  # 20 * 0.049 = 0.98 -> ceil 1
        (0.55, 0.1),  # exactly on the edge: must not round up to 0.2
        (0.551, 0.2),
        (0.6, 0.2),
        (0.75, 0.5),
        (0.95, 0.9),
        (0.951, 1.0),
        (1.0, 1.0),
    ],
)
def test_score_step(iou_value, expected):
    got = metrics.score_from_iou(torch.tensor([iou_value], dtype=torch.float64))
    assert got.item() == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize(
    "n_inter, n_union, expected",
    [(500, 1000, 0.0), (549, 1000, 0.1), (550, 1000, 0.1), (551, 1000, 0.2), (1000, 1000, 1.0)],
)
def test_course_score_on_masks(n_inter, n_union, expected):
    p, t = counted(n_inter, (n_union - n_inter) // 2, n_union - n_inter - (n_union - n_inter) // 2)
    assert metrics.iou(p, t).item() == pytest.approx(n_inter / n_union)
    assert metrics.course_score(p, t).item() == pytest.approx(expected, abs=1e-7)


def test_course_score_edges_float32_iou():
    # The same edges when the IoU arrives as float32 (as a caller may store it).
    iou32 = torch.tensor([0.5, 0.55, 0.6, 0.65, 0.9, 0.95], dtype=torch.float32)
    got = metrics.score_from_iou(iou32).tolist()
    assert got == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.8, 0.9], abs=1e-7)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        metrics.iou(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 3))
