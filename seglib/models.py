"""SegNet, UNet and UNet2 for binary segmentation: (B,3,H,W) float -> (B,1,H,W) logits
(and, by name, the pretrained EffUNet of :mod:`seglib.pretrained`).

- SegNet (Badrinarayanan et al. 2017, arXiv 1511.00561): VGG-like encoder whose max-pools keep
  their indices; the decoder max-unpools with those indices, then convolves. No skip features.
- UNet (Ronneberger et al. 2015, arXiv 1505.04597): max-pool down, bilinear upsample up,
  skip concatenation.
- UNet2: the same UNet with stride-2 convolutions down and stride-2 transposed convolutions up.

``width`` is the channel count of the first stage; stage ``i`` has ``width * 2**i`` channels
(course scale width=64: 64-128-256-512-1024). ``depth`` is the number of down steps.
"""

from __future__ import annotations

import torch
from torch import nn

STUDY_NETS = ("segnet", "unet", "unet2", "effunet")  # the course study's grid
NAMES = (*STUDY_NETS, "effunet_lite2")
PRETRAINED = (
    "effunet",
    "effunet_lite2",
)  # nets with an ImageNet-pretrained encoder (seglib.pretrained)


def conv_bn_relu(cin: int, cout: int, n: int = 2) -> nn.Sequential:
    """``n`` x (3x3 conv, BatchNorm, ReLU)."""
    layers = []
    for i in range(n):
        layers += [
            nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


def _channels(width: int, depth: int) -> list[int]:
    return [width * 2**i for i in range(depth + 1)]


class SegNet(nn.Module):
    """SegNet: encoder stages each end in ``MaxPool2d(return_indices=True)``; the decoder
    ``MaxUnpool2d``s with the matching indices, then applies conv blocks."""

    def __init__(self, width: int = 64, depth: int = 4, in_ch: int = 3):
        super().__init__()
        ch = _channels(width, depth - 1)
        convs = [2, 2] + [3] * (depth - 2)  # VGG16: 2, 2, 3, 3, 3 convs per stage
        self.enc = nn.ModuleList(
            conv_bn_relu(cin, cout, n) for cin, cout, n in zip([in_ch] + ch[:-1], ch, convs)
        )
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2, 2)
        # Decoder stage i mirrors encoder stage i: ch[i] -> ch[i-1] (last stage keeps ch[0]).
        self.dec = nn.ModuleList(
            conv_bn_relu(cout, cin, n) for cin, cout, n in zip([ch[0]] + ch[:-1], ch, convs)
        )
        self.head = nn.Conv2d(ch[0], 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        indices = []
        for block in self.enc:
            x, idx = self.pool(block(x))
            indices.append(idx)
        for block, idx in zip(reversed(self.dec), reversed(indices)):
            x = block(self.unpool(x, idx))
        return self.head(x)


class _Down(nn.Module):
    def __init__(self, cin: int, cout: int, strided: bool):
        super().__init__()
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cin, 2, stride=2, bias=False), nn.BatchNorm2d(cin))
            if strided
            else nn.MaxPool2d(2)
        )
        self.conv = conv_bn_relu(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.down(x))


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int, transposed: bool):
        super().__init__()
        if transposed:
            self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        else:
            # 1x1 conv then bilinear upsample: the same map as upsample-then-conv (both are
            # linear and bilinear weights sum to 1), at a quarter of the conv cost.
            self.up = nn.Sequential(
                nn.Conv2d(cin, cout, 1),
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            )
        self.conv = conv_bn_relu(2 * cout, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNet(nn.Module):
    """UNet; ``strided=True`` gives UNet2 (stride-2 convs down, stride-2 transposed convs up)."""

    def __init__(self, width: int = 64, depth: int = 4, in_ch: int = 3, strided: bool = False):
        super().__init__()
        ch = _channels(width, depth)
        self.stem = conv_bn_relu(in_ch, ch[0])
        self.downs = nn.ModuleList(_Down(a, b, strided) for a, b in zip(ch[:-1], ch[1:]))
        self.ups = nn.ModuleList(_Up(b, a, strided) for a, b in zip(ch[:-1], ch[1:]))
        self.head = nn.Conv2d(ch[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in reversed(self.ups):
            x = up(x, skips.pop())
        return self.head(x)


class _Checked(nn.Sequential):
    """Wraps a net with a clear error when the input side is not divisible by 2**depth."""

    def __init__(self, net: nn.Module, depth: int):
        super().__init__(net)
        self.depth = depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = 2**self.depth
        if x.ndim != 4 or x.shape[-1] % k or x.shape[-2] % k:
            raise ValueError(
                f"input of shape {tuple(x.shape)}: expected (B,C,H,W) with H and W divisible by "
                f"2**depth = {k}; resize to e.g. {max(k, x.shape[-1] // k * k)}"
            )
        return super().forward(x)


def build(name: str, width: int = 64, depth: int = 4, pretrained: bool = False, **kw) -> nn.Module:
    """Build a net by name (:data:`NAMES`); output is (B,1,H,W) logits.

    ``effunet`` (:class:`seglib.pretrained.EffUNet`; ``effunet_lite2`` the same on a larger
    encoder) takes any input size and ignores ``depth``
    (its encoder has 5 stages); ``pretrained=True`` loads its ImageNet encoder weights (for
    training; a checkpoint brings its own)."""
    name = name.lower()
    if name not in NAMES:
        raise ValueError(f"unknown net {name!r}; choose from {', '.join(NAMES)}")
    if width < 1 or depth < 1:
        raise ValueError(f"width and depth must be >= 1, got width={width}, depth={depth}")
    if name in PRETRAINED:
        from seglib.pretrained import EffUNet  # timm and smp load only when asked for

        return EffUNet(width, pretrained=pretrained, net=name)
    if name == "segnet":
        net = SegNet(width, depth, **kw)
    else:
        net = UNet(width, depth, strided=name == "unet2", **kw)
    return _Checked(net, depth)


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
