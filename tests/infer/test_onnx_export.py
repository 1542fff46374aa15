"""seglib export --onnx: the net run by onnxruntime gives the masks torch gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import model_ckpt, scene

from seglib import models
from seglib.cli import main
from seglib.engine import checkpoint
from seglib.infer.onnx_export import export_checkpoint, predict_plain
from seglib.infer.predict import load_model, predict_mask

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return 1.0 if union == 0 else (a & b).sum() / union


def effunet_ckpt(path, size=64):
    torch.manual_seed(0)
    net = models.build("effunet", 16, 4, pretrained=False)
    cfg = {"net": "effunet", "width": 16, "depth": 4, "size": size, "loss": "dice"}
    norm = torch.tensor([[0.485, 0.456, 0.406], [0.229, 0.224, 0.225]]).view(2, 1, 3, 1, 1)
    checkpoint.save(path, {"model": net.state_dict(), "config": cfg, "norm": norm, "epoch": 1})
    return path


@pytest.mark.parametrize("kind", ["unet", "effunet"])
def test_onnx_masks_are_the_torch_masks(tmp_path, kind, one_thread):
    ckpt = model_ckpt(tmp_path / "m.pt") if kind == "unet" else effunet_ckpt(tmp_path / "m.pt")
    onnx_path = export_checkpoint(ckpt, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    model, cfg, norm = load_model(ckpt, "cpu")
    x = torch.rand(2, 3, 64, 96)  # the logits themselves, on a non-square batch
    with torch.no_grad():
        want = model((x - norm[0]) / norm[1]).numpy()
    got = session.run(None, {"image": x.numpy()})[0]
    assert got.shape == want.shape and np.abs(got - want).max() < 1e-3 * max(1, np.abs(want).max())
    shapes = [(60, 80), (45, 45), (120, 90)]
    for k, (h, w) in enumerate(shapes):
        image, _ = scene(h, w, box=(h // 4, h // 2 + k, w // 3, 2 * w // 3))
        want = predict_mask(model, cfg, norm, image, tta=False, pipeline="plain")
        got = predict_plain(session, image, cfg["size"])
        assert got.shape == (h, w) and got.dtype == bool
        assert iou(got, want) >= 0.999
        assert kind == "unet" or 0 < want.sum() < want.size  # a real mask, neither empty nor full


def test_onnx_has_dynamic_sides_and_says_how_to_use_it(tmp_path):
    import onnx

    path = export_checkpoint(model_ckpt(tmp_path / "m.pt"), tmp_path / "m.onnx")
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["size"] == "32" and meta["multiple"] == "4" and meta["net"] == "unet"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {"image": np.random.rand(2, 3, 24, 40).astype(np.float32)})[0]
    assert out.shape == (2, 1, 24, 40)


def test_export_onnx_command(tmp_path, capsys):
    ckpt = model_ckpt(tmp_path / "m.pt")
    assert main(["export", "--onnx", str(tmp_path / "out" / "m.onnx"), "--weights", str(ckpt)]) == 0
    assert (tmp_path / "out" / "m.onnx").stat().st_size > 1000
    assert not list((tmp_path / "out").glob("*.tmp"))  # written whole
    assert main(["export"]) == 2
    assert "--onnx" in capsys.readouterr().err
