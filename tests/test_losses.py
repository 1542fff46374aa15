"""Losses against independent references (hand-worked values, direct formulas, torch ops)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from seglib import losses


def sig(x):
    return 1 / (1 + math.exp(-x))


def rand_pair(b=2, h=16, w=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, 1, h, w, generator=g) * 2
    target = (torch.rand(b, 1, h, w, generator=g) > 0.6).float()
    return logits, target


def test_build_names_and_unknown():
    assert set(losses.NAMES) == {"bce", "dice", "focal", "correlation", "tversky", "lovasz"}
    for name in losses.NAMES:
        assert isinstance(losses.build(name), torch.nn.Module)
    with pytest.raises(ValueError, match="bce.*dice.*focal.*correlation.*tversky.*lovasz"):
        losses.build("iou")


def test_bce_matches_torch_and_pos_weight():
    logits, target = rand_pair()
    ref = F.binary_cross_entropy_with_logits(logits, target)
    assert losses.build("bce")(logits, target).item() == pytest.approx(ref.item(), abs=1e-6)
    ref_pw = F.binary_cross_entropy_with_logits(logits, target, pos_weight=torch.tensor(3.0))
    got_pw = losses.build("bce", pos_weight=3.0)(logits, target)
    assert got_pw.item() == pytest.approx(ref_pw.item(), abs=1e-6)


def test_bce_extreme_logits():
    logits = torch.tensor([1e4, -1e4, 1e4, -1e4]).view(1, 1, 2, 2).requires_grad_()
    target = torch.tensor([0.0, 1.0, 1.0, 0.0]).view(1, 1, 2, 2)
    loss = losses.build("bce")(logits, target)
    assert loss.item() == pytest.approx(5000.0)  # two pixels wrong by 1e4, two right
    loss.backward()
    assert logits.grad.flatten().tolist() == pytest.approx([0.25, -0.25, 0.0, 0.0])


def test_dice_hand_worked():
    # One 2x2 image: p = sigmoid(0, 0, 2, -2), t = (1, 0, 1, 0), smooth 1.
    logits = torch.tensor([0.0, 0.0, 2.0, -2.0]).view(1, 1, 2, 2)
    target = torch.tensor([1.0, 0.0, 1.0, 0.0]).view(1, 1, 2, 2)
    p = [0.5, 0.5, sig(2), sig(-2)]
    inter = 0.5 + sig(2)
    expected = 1 - (2 * inter + 1) / (sum(p) + 2 + 1)
    assert losses.build("dice")(logits, target).item() == pytest.approx(expected, abs=1e-6)


def test_dice_is_per_image_mean():
    # Image 0: 1 lesion pixel of 16, image 1: 12 of 16; same constant logit 1.
    target = torch.zeros(2, 1, 4, 4)
    target[0, 0, 0, 0] = 1
    target[1, 0, :3] = 1
    logits = torch.ones(2, 1, 4, 4)
    p = sig(1)

    def one(n_pos, smooth=1.0):
        return 1 - (2 * p * n_pos + smooth) / (16 * p + n_pos + smooth)

    per_image = (one(1) + one(12)) / 2
    pooled = 1 - (2 * p * 13 + 1) / (32 * p + 13 + 1)
    got = losses.build("dice")(logits, target).item()
    assert got == pytest.approx(per_image, abs=1e-6)
    assert abs(got - pooled) > 1e-2


def focal_reference(logits, target, alpha, gamma):
    p = torch.sigmoid(logits.double())
    t = target.double()
    ce = -(t * torch.log(p) + (1 - t) * torch.log(1 - p))
    p_t = p * t + (1 - p) * (1 - t)
    loss = (1 - p_t) ** gamma * ce
    if alpha >= 0:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return loss.mean().item()


@pytest.mark.parametrize("alpha", [-1.0, 0.25, 0.5])
def test_focal_matches_formula_and_torchvision(alpha):
    logits, target = rand_pair()
    got = losses.build("focal", alpha=alpha)(logits, target).item()
    assert got == pytest.approx(focal_reference(logits, target, alpha, 2.0), abs=1e-6)
    tv = sigmoid_focal_loss(logits, target, alpha=alpha, gamma=2.0, reduction="mean")
    assert got == pytest.approx(tv.item(), abs=1e-7)


def test_focal_default_is_unweighted_gamma2():
    logits, target = rand_pair(seed=1)
    got = losses.build("focal")(logits, target).item()
    assert got == pytest.approx(focal_reference(logits, target, -1.0, 2.0), abs=1e-6)
    # gamma = 0 without alpha is plain BCE
    bce = F.binary_cross_entropy_with_logits(logits, target).item()
    assert losses.build("focal", gamma=0.0)(logits, target).item() == pytest.approx(bce, abs=1e-6)


def test_tversky_half_half_is_dice():
    logits, target = rand_pair(seed=2)
    t = losses.build("tversky", alpha=0.5, beta=0.5, smooth=0.0)(logits, target)
    d = losses.build("dice", smooth=0.0)(logits, target)
    assert t.item() == pytest.approx(d.item(), abs=1e-6)
    t1 = losses.build("tversky", alpha=0.5, beta=0.5, smooth=1.0)(logits, target)
    d2 = losses.build("dice", smooth=2.0)(logits, target)
    assert t1.item() == pytest.approx(d2.item(), abs=1e-6)


def test_tversky_hand_worked():
    # p = sigmoid(2) on both pixels, t = (1, 0): TP = FP = s2, FN = 1 - s2.
    logits = torch.tensor([2.0, 2.0]).view(1, 1, 1, 2)
    target = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)
    s2 = sig(2)
    expected = 1 - (s2 + 1) / (s2 + 0.3 * s2 + 0.7 * (1 - s2) + 1)
    assert losses.build("tversky")(logits, target).item() == pytest.approx(expected, abs=1e-6)


def lovasz_reference(logits, target):
    """Plain-python binary Lovasz hinge, one image at a time (Berman et al. 2018, Alg. 1)."""
    values = []
    b = len(logits)
    for x, t in zip(logits.reshape(b, -1).tolist(), target.reshape(b, -1).tolist()):
        errs = sorted(((1 - xi * (2 * ti - 1), ti) for xi, ti in zip(x, t)), key=lambda e: -e[0])
        n_pos = sum(t)
        prev, total, inter, union = 0.0, 0.0, n_pos, n_pos
        for err, ti in errs:
            inter -= ti
            union += 1 - ti
            jac = 1 - inter / union
            total += max(err, 0.0) * (jac - prev)
            prev = jac
        values.append(total)
    return sum(values) / len(values)


def test_lovasz_hand_worked():
    # errors (1 - 2, 1 + 1) = (-1, 2); sorted (2, -1); Jaccard steps 0.5, 0.5 -> 2 * 0.5 = 1.
    logits = torch.tensor([2.0, -1.0]).view(1, 1, 1, 2)
    target = torch.ones(1, 1, 1, 2)
    assert losses.build("lovasz")(logits, target).item() == pytest.approx(1.0)


def test_lovasz_matches_reference():
    logits, target = rand_pair(b=3, h=6, w=5, seed=3)
    target[2] = 0  # an empty mask too
    got = losses.build("lovasz")(logits, target).item()
    assert got == pytest.approx(lovasz_reference(logits, target), abs=1e-5)


def blob(b=2, size=16):
    t = torch.zeros(b, 1, size, size)
    t[:, :, 4:11, 3:12] = 1
    return t


def test_correlation_properties():
    loss = losses.build("correlation")
    t = blob()
    right = loss(40 * t - 20, t).item()  # logits +-20 agreeing with the target
    wrong = loss(20 - 40 * t, t).item()
    logits, _ = rand_pair(seed=4)
    middle = loss(logits, t).item()
    assert 0 <= right < 1e-6
    assert wrong > middle > right
    assert wrong > 20  # at least the BCE of +-20 logits on every pixel


def test_correlation_is_bce_plus_structural_term():
    logits, t = rand_pair(seed=5)
    bce = F.binary_cross_entropy_with_logits(logits, t).item()
    only_bce = losses.build("correlation", weight=0.0)(logits, t).item()
    assert only_bce == pytest.approx(bce, abs=1e-6)
    full = losses.build("correlation")(logits, t).item()
    assert full > bce
    only_s = losses.build("correlation", bce_weight=0.0)(logits, t).item()
    assert full == pytest.approx(bce + only_s, abs=1e-5)


def cmss_reference(z, y, window=3, sigma=1.5, beta=0.1, c=0.01, bce_weight=1.0, weight=1.0):
    """CMSS (Zhao et al. 2019) written out pixel by pixel in numpy, independently of seglib's
    convolutions: Gaussian-window local mean/std with edge (replicate) padding,
    ``e = |y' - p'|``, hard pixels ``e > beta * max(e)`` per image, ``sum(e f BCE) / sum(f)``."""
    import numpy as np

    z, y = np.asarray(z, np.float64), np.asarray(y, np.float64)  # (B, H, W)
    r = window // 2
    g = np.exp(-(np.arange(-r, r + 1) ** 2) / (2 * sigma**2))
    w = np.outer(g, g) / g.sum() ** 2

    def normalise(m):
        pad = np.pad(m, r, mode="edge")
        out = np.empty_like(m)
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                patch = pad[i : i + window, j : j + window]
                mu = (w * patch).sum()
                var = max((w * patch**2).sum() - mu**2, 0.0)
                out[i, j] = (m[i, j] - mu) / (math.sqrt(var) + c)
        return out

    bce = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    terms = []
    for zb, yb, bb in zip(z, y, bce):
        e = np.abs(normalise(yb) - normalise(1 / (1 + np.exp(-zb))))
        f = e > beta * e.max()
        terms.append((e * f * bb).sum() / (f.sum() + 1e-6))
    return bce_weight * bce.mean() + weight * float(np.mean(terms)), bce.mean()


@pytest.mark.parametrize("beta", [0.1, 0.6])
def test_correlation_matches_a_pixelwise_numpy_reference(beta):
    """Tiny maps (2 images of 4 x 5, window 3): pins the local normalisation, the
    ``beta * max(e)`` threshold (per image) and the weighting; a loss whose structural term were
    plain BCE would miss the reference by far more than the tolerance."""
    z = torch.tensor(
        [[[2.0, -1.0, 0.5, -3.0, 1.0], [0.0, 1.5, -0.5, 2.5, -2.0],
          [-1.0, 3.0, 1.0, -0.2, 0.7], [0.3, -2.5, 2.0, 1.0, -1.5]],
         [[-0.5, 0.5, 4.0, -1.0, 0.0], [1.0, -3.0, 0.2, 0.8, 2.0],
          [2.2, -0.7, -1.2, 3.0, -0.1], [-2.0, 1.0, 0.6, -0.9, 1.8]]]
    )  # fmt: skip
    y = torch.tensor(
        [[[1, 0, 1, 0, 0], [1, 1, 0, 1, 0], [0, 1, 1, 1, 1], [0, 0, 1, 1, 0]],
         [[0, 0, 1, 0, 0], [0, 0, 1, 1, 1], [1, 0, 0, 1, 0], [0, 1, 1, 0, 1]]], dtype=torch.float32
    )  # fmt: skip
    want, bce = cmss_reference(z.numpy(), y.numpy(), beta=beta)
    got = losses.correlation_loss(
        z[:, None], y[:, None], losses.CorrelationParams(window=3, beta=beta)
    ).item()
    assert got == pytest.approx(want, rel=1e-5)
    assert abs(want - 2 * bce) > 100 * 1e-5 * want  # the BCE-only variant would fail here
    lo = losses.correlation_loss(
        z[:, None], y[:, None], losses.CorrelationParams(window=3, beta=0.99)
    ).item()
    assert lo == pytest.approx(cmss_reference(z.numpy(), y.numpy(), beta=0.99)[0], rel=1e-5)
    assert abs(lo - want) > 1e-3  # the threshold matters on these maps


@pytest.mark.parametrize("fill", [0.0, 1.0])
@pytest.mark.parametrize("autocast", [False, True])
def test_correlation_flat_masks(fill, autocast):
    t = torch.full((2, 1, 8, 8), fill)
    logits, _ = rand_pair(h=8, w=8, seed=6)
    logits.requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        value = losses.build("correlation")(logits, t)
        flat = losses.build("correlation")(torch.full_like(t, 20 * (2 * fill - 1)), t)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()
    assert 0 <= flat.item() < 1e-6  # confident and correct on a flat mask


@pytest.mark.parametrize("name", losses.NAMES)
@pytest.mark.parametrize("autocast", [False, True])
def test_gradients_finite_and_channels_last(name, autocast):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 3, 12, 12, generator=g)
    w = (torch.randn(1, 3, 3, 3, generator=g) * 0.5).requires_grad_()
    target = blob(2, 12)
    loss_fn = losses.build(name)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        logits = F.conv2d(x, w, padding=1)  # bf16 under autocast, like a model's output
        value = loss_fn(logits, target)
        value_cl = loss_fn(
            logits.contiguous(memory_format=torch.channels_last),
            target.contiguous(memory_format=torch.channels_last),
        )
    assert value.dtype == torch.float32 and value.dim() == 0
    assert torch.isfinite(value) and value.item() >= 0
    assert value_cl.item() == pytest.approx(value.item(), rel=1e-5, abs=1e-6)
    value.backward()
    assert torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0


@pytest.mark.parametrize("name", losses.NAMES)
def test_extreme_logits_finite(name):
    logits = torch.tensor([1e4, -1e4, 1e4, -1e4]).view(1, 1, 2, 2).requires_grad_()
    target = torch.tensor([0.0, 1.0, 1.0, 0.0]).view(1, 1, 2, 2)
    value = losses.build(name)(logits, target)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        losses.build("dice")(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
