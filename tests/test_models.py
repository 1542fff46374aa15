"""Nets: shapes and gradients, parameter counts against hand counts, input checks, and the
structure each architecture promises (SegNet unpools with its encoder's indices, UNet max-pools,
UNet2 uses strided convs and transposed convs)."""

import pytest
import torch
from torch import nn

from seglib import models

pytestmark = pytest.mark.usefixtures("one_thread")

SCRATCH = [n for n in models.NAMES if n not in models.PRETRAINED]  # width/depth define them


def batch(b=2, h=64, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, h, w, generator=g)


@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize("width", [4, 8])
@pytest.mark.parametrize("name", models.NAMES)
def test_forward_backward(name, width, size):
    torch.manual_seed(0)
    net = models.build(name, width=width)
    x = batch(2, size, size)
    out = net(x)
    assert out.shape == (2, 1, size, size)
    assert out.dtype == torch.float32
    target = (x[:, :1] > 0).float()
    nn.functional.binary_cross_entropy_with_logits(out, target).backward()
    params = list(net.named_parameters())
    assert params
    for pname, p in params:
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{pname} has a non-finite gradient"
    # the head's gradient cannot vanish: the loss depends on it directly
    assert sum(p.grad.abs().sum().item() for _, p in params) > 0


@pytest.mark.parametrize("name", models.NAMES)
def test_non_square_input_and_eval_mode(name):
    torch.manual_seed(0)
    net = models.build(name, width=4, depth=3).eval()
    with torch.no_grad():
        out = net(batch(1, 32, 80))
    assert out.shape == (1, 1, 32, 80)
    assert torch.isfinite(out).all()


# --- parameter counts ----------------------------------------------------------------------


def cbr(cin, cout, n=2):
    """Parameters of n x (3x3 conv without bias, BatchNorm(weight, bias))."""
    return 9 * cin * cout + 2 * cout + (n - 1) * (9 * cout * cout + 2 * cout)


def unet_count(w, d, strided):
    ch = [w * 2**i for i in range(d + 1)]
    total = cbr(3, ch[0]) + (ch[0] + 1)  # stem, 1x1 head with bias
    for a, b in zip(ch[:-1], ch[1:]):
        total += cbr(a, b)  # down conv block
        total += (4 * a * a + 2 * a) if strided else 0  # 2x2 stride-2 conv (no bias) + BN
        total += (4 * b * a + a) if strided else (b * a + a)  # transposed 2x2 / 1x1 conv, bias
        total += cbr(2 * a, a)  # up conv block on [skip, upsampled]
    return total


def segnet_count(w, d):
    ch = [w * 2**i for i in range(d)]
    convs = [2, 2] + [3] * (d - 2)
    enc = sum(cbr(cin, cout, n) for cin, cout, n in zip([3] + ch[:-1], ch, convs))
    dec = sum(cbr(cout, cin, n) for cin, cout, n in zip([ch[0]] + ch[:-1], ch, convs))
    return enc + dec + 9 * ch[0] + 1  # 3x3 head with bias


def test_param_count_hand_worked_tiny_configs():
    # width 2, depth 1 worked out by hand:
    # UNet: stem 3->2 (54+4 + 36+4 = 98); down 2->4 (72+8 + 144+8 = 232);
    #       up 1x1 4->2 + bias (10) + block 4->2 (72+4 + 36+4 = 116); head 2+1 = 3 -> 459.
    assert models.count_params(models.build("unet", width=2, depth=1)) == 459
    # UNet2: + 2x2 stride-2 conv 2->2 and its BN (16+4 = 20), transposed 4->2 (32+2) for 1x1 -> 503.
    assert models.count_params(models.build("unet2", width=2, depth=1)) == 503
    # SegNet depth 1: encoder 3->2 (98), decoder 2->2 (36+4 + 36+4 = 80), 3x3 head 18+1 -> 197.
    assert models.count_params(models.build("segnet", width=2, depth=1)) == 197
    # depth 2 adds encoder 2->4 (232) and decoder 4->2 (116): 545.
    assert models.count_params(models.build("segnet", width=2, depth=2)) == 545


@pytest.mark.parametrize("width,depth", [(1, 1), (2, 3), (4, 2), (8, 4), (16, 4), (3, 5)])
def test_param_count_formula(width, depth):
    expected = {
        "unet": unet_count(width, depth, strided=False),
        "unet2": unet_count(width, depth, strided=True),
        "segnet": segnet_count(width, depth),
    }
    for name, n in expected.items():
        net = models.build(name, width=width, depth=depth)
        assert models.count_params(net) == n, name
        assert sum(p.numel() for p in net.parameters()) == n, name


@pytest.mark.parametrize("name", SCRATCH)
def test_width_and_depth_scale_params(name):
    count = {
        (w, d): models.count_params(models.build(name, width=w, depth=d))
        for w in (8, 16)
        for d in (3, 4)
    }
    # every conv is width x width: doubling the width about quadruples the count
    for d in (3, 4):
        assert 3.6 < count[16, d] / count[8, d] < 4.0
    # one more stage at twice the channels adds most of the parameters
    for w in (8, 16):
        assert count[w, 4] > 3 * count[w, 3]


def test_count_params_counts_trainable_only():
    net = models.build("unet", width=2, depth=1)
    head = net[0].head
    head.requires_grad_(False)
    assert models.count_params(net) == 459 - 3


@pytest.mark.parametrize("name", SCRATCH)
def test_first_stage_has_width_channels(name):
    net = models.build(name, width=6, depth=2)
    first = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
    assert (first.in_channels, first.out_channels) == (3, 6)


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCRATCH)
@pytest.mark.parametrize("shape", [(60, 64), (64, 60), (68, 68), (4, 4)])
def test_input_not_divisible_by_2_pow_depth(name, shape):
    net = models.build(name, width=4, depth=3)  # needs multiples of 8
    with pytest.raises(ValueError, match=r"divisible by 2\*\*depth = 8"):
        net(batch(1, *shape))


def test_divisibility_follows_depth():
    # 48 = 16 * 3: fine for depth 4; 40 is not a multiple of 16 but is of 8
    assert models.build("unet", width=2, depth=4)(batch(1, 48, 48)).shape == (1, 1, 48, 48)
    with pytest.raises(ValueError, match="16"):
        models.build("unet", width=2, depth=4)(batch(1, 40, 40))
    assert models.build("unet", width=2, depth=3)(batch(1, 40, 40)).shape == (1, 1, 40, 40)


def test_unknown_net_name():
    with pytest.raises(ValueError, match=r"unknown net 'fcn'.*segnet, unet, unet2"):
        models.build("fcn")


@pytest.mark.parametrize("name", models.NAMES)
@pytest.mark.parametrize("width,depth", [(0, 3), (4, 0), (-2, 2)])
def test_bad_width_or_depth(name, width, depth):
    with pytest.raises(ValueError, match="width and depth must be >= 1"):
        models.build(name, width=width, depth=depth)


# --- architecture ---------------------------------------------------------------------------


def modules_of(net, kind):
    return [m for m in net.modules() if isinstance(m, kind)]


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_segnet_unpools_with_encoder_indices(monkeypatch, depth):
    """Spy on every MaxPool2d and MaxUnpool2d call: the decoder's k-th unpool must receive the
    indices returned by the encoder's (depth-1-k)-th pool, and the unpool must restore the
    pooled values at exactly those positions."""
    pooled, unpooled = [], []
    pool_forward, unpool_forward = nn.MaxPool2d.forward, nn.MaxUnpool2d.forward

    def spy_pool(self, x):
        out = pool_forward(self, x)
        assert self.return_indices, "SegNet's pools must return their indices"
        pooled.append((x.detach().clone(), out[0].detach().clone(), out[1].clone()))
        return out

    def spy_unpool(self, x, indices, output_size=None):
        out = unpool_forward(self, x, indices, output_size)
        unpooled.append((x.detach().clone(), indices.clone(), out.detach().clone()))
        return out

    monkeypatch.setattr(nn.MaxPool2d, "forward", spy_pool)
    monkeypatch.setattr(nn.MaxUnpool2d, "forward", spy_unpool)
    torch.manual_seed(0)
    net = models.build("segnet", width=4, depth=depth)
    x = batch(2, 32, 32, seed=3)
    out = net(x)
    assert out.shape == (2, 1, 32, 32)
    assert len(pooled) == depth and len(unpooled) == depth
    for k, (inp, idx, res) in enumerate(unpooled):
        pool_in, _, pool_idx = pooled[depth - 1 - k]
        assert torch.equal(idx, pool_idx), f"unpool {k} did not get pool {depth - 1 - k}'s indices"
        assert res.shape[2:] == pool_in.shape[2:]
        # independent check of the unpool: values sit at the argmax positions, zeros elsewhere
        flat = res.flatten(2)
        gathered = flat.gather(2, idx.flatten(2))
        assert torch.equal(gathered, inp.flatten(2))
        mask = torch.zeros_like(flat, dtype=torch.bool).scatter_(2, idx.flatten(2), True)
        assert (flat[~mask] == 0).all()
    # the indices really are the argmax positions of each 2x2 window of the pool's input
    for pool_in, pool_out, pool_idx in pooled:
        b, c, h, w = pool_in.shape
        windows = pool_in.unfold(2, 2, 2).unfold(3, 2, 2).reshape(b, c, h // 2, w // 2, 4)
        assert torch.equal(windows.amax(-1), pool_out)
        arg = windows.argmax(-1)
        rows = torch.arange(h // 2).view(-1, 1) * 2 + arg // 2
        cols = torch.arange(w // 2).view(1, -1) * 2 + arg % 2
        assert torch.equal(rows * w + cols, pool_idx)


@pytest.mark.parametrize("depth", [1, 3, 4])
def test_unet2_strided_convs_no_maxpool(depth):
    net = models.build("unet2", width=4, depth=depth)
    assert not modules_of(net, nn.MaxPool2d)
    assert not modules_of(net, nn.Upsample)
    downs = [m for m in modules_of(net, nn.Conv2d) if m.stride == (2, 2)]
    ups = modules_of(net, nn.ConvTranspose2d)
    assert len(downs) == depth and all(m.kernel_size == (2, 2) for m in downs)
    assert len(ups) == depth and all(m.stride == (2, 2) for m in ups)
    assert all(m.stride == (1, 1) for m in modules_of(net, nn.Conv2d) if m not in downs)


@pytest.mark.parametrize("depth", [1, 3, 4])
def test_unet_maxpool_no_transposed_conv(depth):
    net = models.build("unet", width=4, depth=depth)
    pools = modules_of(net, nn.MaxPool2d)
    assert len(pools) == depth and not any(p.return_indices for p in pools)
    assert not modules_of(net, nn.ConvTranspose2d)
    assert all(m.stride == (1, 1) for m in modules_of(net, nn.Conv2d))
    assert modules_of(net, nn.Upsample)


def test_segnet_has_pool_with_indices_and_unpool():
    net = models.build("segnet", width=4, depth=3)
    assert modules_of(net, nn.MaxUnpool2d)
    assert all(p.return_indices for p in modules_of(net, nn.MaxPool2d))
    assert not modules_of(net, nn.ConvTranspose2d) and not modules_of(net, nn.Upsample)


def test_unet_uses_skip_connections():
    """The last up block gets the full-resolution stem features as its skip, and the output
    depends on them."""
    torch.manual_seed(0)
    net = models.build("unet", width=4, depth=2).eval()
    x = batch(1, 32, 32)
    with torch.no_grad():
        ref = net(x)
        inner = net[0]
        first_up = inner.ups[0]
        calls = []

        def hook(module, args):
            calls.append(args[1].shape)
            return (args[0], torch.zeros_like(args[1]))

        handle = first_up.register_forward_pre_hook(hook)
        try:
            no_skip = net(x)
        finally:
            handle.remove()
    assert calls == [(1, 4, 32, 32)]  # the first-stage skip at full resolution
    assert not torch.allclose(ref, no_skip)
