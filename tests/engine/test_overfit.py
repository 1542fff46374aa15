"""Every net with every loss can overfit one small synthetic batch: a wiring check of nets,
losses and gradients together (a net or loss that is broken, detached or sign-flipped fails).

IoU is measured in train mode (BatchNorm on batch statistics, as in the training steps) with a
no-grad forward pass of the same batch, so a few dozen steps are enough; running statistics
(eval mode) would lag behind the weights that early. The bar, 0.95, is well above what the best
single darkness threshold reaches on this batch (checked below), so the nets must learn shape.
"""

import numpy as np
import pytest
import torch

from seglib import losses, models
from seglib.data.synth import synthetic_case

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE, WIDTH, DEPTH = 64, 4, 3
TARGET_IOU = 0.95
MAX_STEPS, CHECK_EVERY = 400, 10


@pytest.fixture(scope="module")
def one_batch():
    """4 synthetic images (B,3,64,64), standardised per channel, and bool masks (B,64,64)."""
    images, masks = zip(*(synthetic_case(seed=7, index=i, shape=(SIZE, SIZE)) for i in range(4)))
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    x = (x - x.mean(dim=(0, 2, 3), keepdim=True)) / x.std(dim=(0, 2, 3), keepdim=True)
    return x, np.stack(masks)


def mean_iou(logits: torch.Tensor, masks: np.ndarray) -> float:
    """Mean per-image IoU of ``logits > 0`` against bool masks, in numpy."""
    pred = logits.detach().numpy()[:, 0] > 0
    inter = (pred & masks).sum(axis=(1, 2))
    union = (pred | masks).sum(axis=(1, 2))
    return float(np.mean(np.where(union > 0, inter / np.maximum(union, 1), 1.0)))


def test_batch_is_not_solved_by_a_colour_threshold(one_batch):
    x, masks = one_batch
    grey = x.mean(dim=1, keepdim=True)
    best = max(mean_iou(t - grey, masks) for t in torch.linspace(-3, 3, 241).tolist())
    assert 0.5 < best < TARGET_IOU - 0.05


@pytest.mark.parametrize("loss", losses.NAMES)
@pytest.mark.parametrize("net", models.NAMES)
def test_overfits_one_batch(one_batch, net, loss):
    x, masks = one_batch
    y = torch.from_numpy(masks)[:, None].float()
    torch.manual_seed(0)
    model = models.build(net, width=WIDTH, depth=DEPTH).train()
    loss_fn = losses.build(loss)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with torch.no_grad():
        start = mean_iou(model(x), masks)
    ious, first_loss, value = [], None, None
    for step in range(1, MAX_STEPS + 1):
        value = loss_fn(model(x), y)
        assert torch.isfinite(value), f"step {step}: loss {value.item()}"
        first_loss = value.item() if first_loss is None else first_loss
        opt.zero_grad()
        value.backward()
        opt.step()
        if step % CHECK_EVERY == 0:
            with torch.no_grad():
                ious.append(mean_iou(model(x), masks))
            if ious[-1] > TARGET_IOU:
                break
    assert max(ious) > TARGET_IOU, (
        f"{net}+{loss}: IoU {start:.3f} -> best {max(ious):.3f} in {step} steps"
    )
    assert value.item() < first_loss
