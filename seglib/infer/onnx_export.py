"""The shipped net as ONNX: run it without torch (onnxruntime, or any ONNX runtime).

The graph takes ``image``: float32 (B, 3, H, W) RGB in [0, 1] (the checkpoint's input colour
correction, :mod:`seglib.data.colour`, and its normalisation are inside the graph) and returns ``logits`` (B, 1, H, W); a pixel is lesion where
its logit is > 0. Batch, height and width are dynamic; height and width must be multiples of
:func:`multiple` (32 for the pretrained net). The plain pipeline with it (what
:func:`predict_plain` does, and ``seglib predict --no-tta --pipeline plain``): resize the image
to the checkpoint's training size (``size`` in the model's metadata) with anti-aliased bilinear
resizing, run, resize the logits bilinearly back to the image's size, threshold at 0.

Exported by torch's TorchScript-based exporter (``torch.onnx.export(dynamo=False)``): it turns the
net into ONNX in about two seconds; the newer ``torch.export`` path took minutes for the same net
on a 2-core CPU.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from seglib import models, store
from seglib.data import colour
from seglib.data.imageio import upsample_mask

OPSET = 17


class Normalised(torch.nn.Module):
    """``net((correct(x) - mean) / std)``: the net with its input's colour correction
    (:mod:`seglib.data.colour`) and normalisation, for export."""

    def __init__(self, net: torch.nn.Module, norm: torch.Tensor, colour_: str = "none"):
        super().__init__()
        self.net = net
        self.colour = colour.check(colour_)
        self.register_buffer("mean", norm[0].reshape(1, 3, 1, 1).float())
        self.register_buffer("std", norm[1].reshape(1, 3, 1, 1).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((colour.correct(x, self.colour) - self.mean) / self.std)


def multiple(cfg: dict) -> int:
    """The side every input must be a multiple of: 32 for the pretrained net (its encoder's
    stride), ``2**depth`` for the nets trained from scratch."""
    return 32 if cfg["net"] in models.PRETRAINED else 2 ** int(cfg["depth"])


def export_onnx(model: torch.nn.Module, cfg: dict, norm: torch.Tensor, path: Path) -> Path:
    """Write ``model`` (eval mode, CPU, fp32) with ``norm`` as an ONNX file at ``path``
    (written whole or not at all); the metadata records the training size, the multiple and
    the net's name."""
    import onnx  # the exporter's own dependency; an extra: pip install seglib[export]

    net = getattr(model, "unet", model)  # the pretrained net's own padding is left to callers
    wrapped = Normalised(net, norm, colour.of(cfg)).eval()
    side = int(cfg["size"])
    axes = {0: "batch", 2: "height", 3: "width"}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapped, (torch.rand(1, 3, side, side),), str(tmp), dynamo=False,
                          input_names=["image"], output_names=["logits"], opset_version=OPSET,
                          dynamic_axes={"image": axes, "logits": axes})  # fmt: skip
    proto = onnx.load(str(tmp))
    meta = {"size": str(side), "multiple": str(multiple(cfg)), "net": cfg["net"],
            "colour": colour.of(cfg),
            "input": "RGB float32 NCHW in [0, 1]", "output": "logits, lesion where > 0"}  # fmt: skip
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    tmp.unlink()
    store.atomic_write(path, lambda f: f.write(proto.SerializeToString()))
    return path


def predict_plain(session, image: np.ndarray, size: int) -> np.ndarray:
    """Binary (H, W) mask of an (H, W, 3) uint8 ``image`` with an onnxruntime ``session`` of an
    exported net: the plain pipeline without test-time augmentation, as the module says."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div(255)
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    logits = session.run(None, {"image": x.numpy()})[0]
    return upsample_mask(logits[0, 0], image.shape[:2])


def export_checkpoint(weights: Path, path: Path) -> Path:
    """:func:`export_onnx` of the checkpoint file ``weights`` (fp32, CPU, eval mode)."""
    from seglib.infer.predict import load_model

    model, cfg, norm = load_model(Path(weights), "cpu")
    return export_onnx(model.float(), cfg, norm, path)
