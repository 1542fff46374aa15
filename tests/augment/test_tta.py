"""Test-time augmentation against the square's symmetry group built from torch.rot90 / flip."""

import pytest
import torch

from seglib.augment.tta import N_MAPS, dihedral, tta_logits, undo_dihedral


def group(x):
    """The 8 images of ``x`` under rotations by 90 degrees and reflections, reference form."""
    return [torch.rot90(x, r, dims=(-2, -1)) for r in range(4)] + [
        torch.rot90(x.flip(-1), r, dims=(-2, -1)) for r in range(4)
    ]


def key(t):
    return tuple(t.flatten().tolist())


X = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)  # no symmetry at all


def test_maps_are_the_eight_symmetries_and_zero_is_identity():
    maps = [dihedral(X, k) for k in range(N_MAPS)]
    assert torch.equal(maps[0], X)
    assert {key(m) for m in maps} == {key(g) for g in group(X)}
    assert len({key(m) for m in maps}) == 8


@pytest.mark.parametrize("k", range(N_MAPS))
def test_undo_inverts_each_map(k):
    assert torch.equal(undo_dihedral(dihedral(X, k), k), X)
    assert torch.equal(dihedral(undo_dihedral(X, k), k), X)


def test_pixelwise_model_is_unchanged():
    net = torch.nn.Conv2d(3, 1, 1)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(tta_logits(net, x), net(x))
        assert torch.equal(tta_logits(net, x, maps=1), net(x))


def test_position_bias_is_averaged_over_the_group():
    """A net that adds a fixed pattern P: TTA gives x + mean of P's 8 symmetric images."""
    pattern = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4) ** 2

    class AddPattern(torch.nn.Module):
        def forward(self, x):
            return x + pattern

    x = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    expected = x + torch.stack(group(pattern)).mean(0)
    torch.testing.assert_close(tta_logits(AddPattern(), x), expected)


@pytest.mark.parametrize("maps", [0, 9])
def test_bad_map_count_is_refused(maps):
    with pytest.raises(ValueError, match="maps"):
        tta_logits(torch.nn.Identity(), X, maps=maps)


def loop_reference(model, x, maps=N_MAPS):
    """The per-view loop TTA was before its views were batched: one forward per map."""
    total = None
    for k in range(maps):
        y = undo_dihedral(model(dihedral(x, k)), k).float()
        total = y if total is None else total + y
    return total / maps


class Counting(torch.nn.Module):
    """``net`` recording the batch size of every forward call."""

    def __init__(self, net):
        super().__init__()
        self.net, self.sizes = net, []

    def forward(self, x):
        self.sizes.append(x.shape[0])
        return self.net(x)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("n, batch, sizes", [(1, 8, [8]), (2, 8, [8] * 2), (3, 8, [6] * 4),
                                             (1, 1, [1] * 8), (16, 8, [16] * 8)])  # fmt: skip
def test_batched_views_equal_the_per_view_loop_in_fp32(n, batch, sizes, channels_last):
    """A UNet (batch norm in eval mode, skips, pooling): the batched views give the loop's
    logits (to float32 summation order inside the convolutions), in the forwards planned."""
    from seglib import models

    torch.manual_seed(0)
    net = models.build("unet", width=4, depth=2).eval()
    x = torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    if channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    counted = Counting(net)
    with torch.inference_mode():
        want = loop_reference(net, x)
        got = tta_logits(counted, x, batch=batch)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert counted.sizes == sizes
