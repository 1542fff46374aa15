"""Colour constancy (``--colour sog``): Shades of Gray against hand-worked values and a numpy
reference written as Barata et al. (2015) publish it, and the same correction wherever the net
sees an image: training, evaluation, prediction, the examples figure and the ONNX graph."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import model_ckpt, scene, tiny_config

from seglib.data import colour
from seglib.data.colour import correct_uint8, shades_of_gray
from seglib.engine import checkpoint, evaluate, train
from seglib.engine.options import FitOptions
from seglib.engine.train import fit
from seglib.infer.predict import load_model, predict_mask

pytestmark = pytest.mark.usefixtures("one_thread")


def reference_sog(img: np.ndarray, power: int = 6) -> np.ndarray:
    """Shades of Gray as in the dermoscopy papers' numpy code: an (H, W, 3) image in 0..255."""
    img = img.astype(np.float64)
    rgb = np.power(np.mean(np.power(img, power), (0, 1)), 1 / power)
    rgb = rgb / np.sqrt(np.sum(rgb**2))
    return np.clip(img * (1 / (rgb * np.sqrt(3))), 0, 255)


def chw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1)


def test_a_uniform_colour_becomes_the_grey_of_its_length():
    x = torch.tensor([60.0, 120.0, 180.0]).view(3, 1, 1).expand(3, 4, 5)
    grey = math.sqrt(60**2 + 120**2 + 180**2) / math.sqrt(3)  # 129.61
    assert torch.allclose(shades_of_gray(x), torch.full((3, 4, 5), grey), atol=1e-3)


def test_a_grey_illuminant_changes_nothing():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 200, (8, 8, 1)).repeat(3, -1).astype(np.float32)
    assert torch.allclose(shades_of_gray(chw(grey)), chw(grey), atol=1e-3)


def test_the_illuminant_is_the_power_six_mean():
    # red: half the pixels 0, half 200 -> e_r = 200 * (1/2) ** (1/6); green, blue: 100 everywhere
    img = np.zeros((2, 2, 3), np.float32)
    img[..., 0] = [[0, 200], [200, 0]]
    img[..., 1:] = 100
    e = np.array([200 * 0.5 ** (1 / 6), 100, 100])
    gain = np.linalg.norm(e) / (math.sqrt(3) * e)  # (0.7371, 1.3134, 1.3134)
    got = shades_of_gray(chw(img)).permute(1, 2, 0).numpy()
    assert got[0, 1, 0] == pytest.approx(200 * gain[0], abs=1e-3)  # 147.4
    assert got[0, 0, 1] == pytest.approx(100 * gain[1], abs=1e-3)  # 131.3
    assert got[0, 0, 0] == 0


def test_matches_the_reference_on_a_batch_and_clips():
    rng = np.random.default_rng(1)
    imgs = [rng.integers(0, 256, (16, 12, 3)).astype(np.uint8) for _ in range(3)]
    imgs[1][..., 2] //= 4  # a strong blue cast the other way: gains above 1 clip at 255
    batch = torch.stack([chw(i) for i in imgs])
    got = shades_of_gray(batch)
    for k, img in enumerate(imgs):  # each image by its own illuminant
        want = reference_sog(img)
        assert np.abs(got[k].permute(1, 2, 0).numpy() - want).max() < 1e-2
    assert got.max() == 255
    assert torch.equal(correct_uint8(batch, "sog"), got.round().to(torch.uint8))
    assert correct_uint8(batch, "none") is batch


def test_an_unknown_correction_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="'gray'.*none, sog"):
        colour.correct(torch.zeros(1, 3, 2, 2), "gray")


class Recorder(torch.nn.Module):
    """A 'net' that remembers its input and predicts the lesion where the input is dark."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return -x.mean(1, keepdim=True)


def test_prediction_feeds_the_net_what_training_fed_it():
    image, _ = scene(64, 64, box=(20, 40, 20, 44))
    image[..., 2] //= 2  # a colour cast for the correction to remove
    norm = torch.tensor([[0.5] * 3, [0.25] * 3]).view(2, 1, 3, 1, 1)
    cfg = {"net": "unet", "size": 64, "depth": 2, "colour": "sog"}
    net = Recorder()
    predict_mask(net, cfg, norm, image, tta=False, pipeline="plain")
    seen = net.seen[0] * norm[1] + norm[0]  # back to [0, 1]
    trained_on = correct_uint8(chw(image)[None], "sog").float() / 255
    assert (seen - trained_on).abs().max() <= 0.5 / 255 + 1e-5  # rounding to uint8 only
    assert (seen - chw(image)[None].float() / 255).abs().max() > 0.1  # and it did correct


def test_training_and_evaluation_use_the_corrected_images(tiny_data, tmp_path, monkeypatch):
    data, split, root = tiny_data
    seen = []
    real = evaluate.evaluate

    def spy(model, loss_fn, rt, images, masks, norm, **kw):
        seen.append(images.clone())
        return real(model, loss_fn, rt, images, masks, norm, **kw)

    monkeypatch.setattr(evaluate, "evaluate", spy)  # the test
    monkeypatch.setattr(train, "evaluate", spy)  # val, each epoch
    cfg = tiny_config(root, epochs=1, colour="sog")
    fit(cfg, data, split, tmp_path / "run", FitOptions(quiet=True, tta=False))
    assert checkpoint.load_checkpoint(tmp_path / "run" / "best.pt")["config"]["colour"] == "sog"
    corrected = correct_uint8(data.images, "sog")
    assert not torch.equal(corrected, data.images)
    assert seen and all(  # each evaluated set is rows of the corrected images
        any(torch.equal(img, c) for c in corrected) for batch in seen for img in batch
    )


def test_fine_tuning_keeps_the_correction_the_weights_learnt(tiny_data, tmp_path):
    data, split, root = tiny_data
    init = model_ckpt(tmp_path / "init.pt", data=str(root), colour="sog")
    with pytest.raises(checkpoint.CheckpointError, match=r"'sog'.*asks for 'none'.*--colour sog"):
        fit(tiny_config(root, init=str(init)), data, split, tmp_path / "r", FitOptions(quiet=True))


def test_onnx_graph_holds_the_correction(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from seglib.infer.onnx_export import export_checkpoint

    ckpt = model_ckpt(tmp_path / "m.pt", colour="sog")
    session = ort.InferenceSession(
        str(export_checkpoint(ckpt, tmp_path / "m.onnx")), providers=["CPUExecutionProvider"]
    )
    model, cfg, norm = load_model(ckpt, "cpu")
    x = torch.rand(2, 3, 32, 32) * torch.tensor([1.0, 0.8, 0.3]).view(1, 3, 1, 1)
    ref = torch.stack([chw(reference_sog(i.permute(1, 2, 0).numpy() * 255)) for i in x]) / 255
    with torch.no_grad():
        want = model((ref.float() - norm[0]) / norm[1]).numpy()
    got = session.run(None, {"image": x.numpy()})[0]
    assert np.abs(got - want).max() < 1e-3 * max(1, np.abs(want).max())
