"""``predict`` on real-world files: EXIF orientation, grayscale / 16-bit /
palette / RGBA input, large images reduced on load, any aspect ratio, ``--overlay``, atomic
mask writes, and the bad-input policy (every good image is predicted, every bad one reported at
the end, exit 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_config
from PIL import Image, ImageOps

from seglib import models
from seglib.augment.tta import N_MAPS, dihedral, undo_dihedral
from seglib.cli import main
from seglib.data import imageio
from seglib.data.imageio import read_image, upsample_mask
from seglib.data.synth import make_synthetic_pairs, synthetic_case
from seglib.engine import checkpoint
from seglib.errors import PH2Error
from seglib.infer import predict as predict_module
from seglib.infer.options import InferenceOptions
from seglib.infer.predict import DEFAULT_WEIGHTS, load_model, predict_files, predict_mask

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A seglib checkpoint of a fresh (untrained, seeded) UNet width 4, depth 2, size 32."""
    torch.manual_seed(0)
    model = models.build("unet", width=4, depth=2)
    norm = torch.tensor([[0.5] * 3, [0.25] * 3]).view(2, 1, 3, 1, 1)
    path = tmp_path_factory.mktemp("w") / "w.pt"
    cfg = tiny_config("synthetic").to_dict()
    checkpoint.save(path, {"model": model.state_dict(), "config": cfg, "norm": norm, "epoch": 1})
    return path


def pattern(h: int, w: int) -> np.ndarray:
    """An (h, w, 3) uint8 image with no symmetry (every pixel distinct in a small image)."""
    y, x = np.mgrid[:h, :w]
    return np.stack([x * 7 % 256, y * 11 % 256, (x * 3 + y * 5) % 256], -1).astype(np.uint8)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "o.png"
    Image.fromarray(pattern(6, 10)).save(path, exif=exif)
    with Image.open(path) as im:
        want = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))  # PIL's reference
    got, full = read_image(path)
    np.testing.assert_array_equal(got, want)
    assert full == want.shape[:2] == ((10, 6) if orientation >= 5 else (6, 10))


def test_grayscale_and_bilevel_become_gray_rgb(tmp_path):
    gray = pattern(5, 7)[..., 0]
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    np.testing.assert_array_equal(
        read_image(tmp_path / "g.png")[0], np.repeat(gray[..., None], 3, -1)
    )
    bits = gray > 100
    Image.fromarray(bits).save(tmp_path / "b.png")  # mode "1"
    np.testing.assert_array_equal(read_image(tmp_path / "b.png")[0][..., 1], bits * 255)


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")  # a 16-bit PNG
    with Image.open(tmp_path / "deep.png") as im:
        assert im.mode.startswith("I")
    got = read_image(tmp_path / "deep.png")[0]
    np.testing.assert_array_equal(got[0, :, 0], [0, 1, 128, 255])  # round(v / 257)
    assert (got[..., 0] == got[..., 2]).all()


def test_palette_and_rgba_over_white(tmp_path):
    rgb = pattern(4, 6)
    Image.fromarray(rgb).quantize(8).save(tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as im:
        assert im.mode == "P"
        want = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(read_image(tmp_path / "p.png")[0], want)
    alpha = np.full((4, 6), 255, np.uint8)
    alpha[0, 0], alpha[1, 1] = 0, 128
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "a.png")
    got = read_image(tmp_path / "a.png")[0].astype(int)
    assert (got[0, 0] == 255).all()  # transparent -> white
    expect = (rgb[1, 1].astype(int) * 128 + 255 * 127) / 255  # alpha blend over white
    assert np.abs(got[1, 1] - expect).max() <= 1
    np.testing.assert_array_equal(got[2:], rgb[2:])


def test_large_jpeg_is_reduced_on_load(tmp_path, monkeypatch):
    image, _ = synthetic_case(seed=2, index=0, shape=(1200, 1800))
    Image.fromarray(image).save(tmp_path / "big.jpg", quality=90)
    asked = []
    draft = Image.Image.draft
    monkeypatch.setattr(
        "PIL.JpegImagePlugin.JpegImageFile.draft",
        lambda self, mode, size: asked.append(size) or draft.__get__(self)(mode, size),
        raising=False,
    )
    got, full = read_image(tmp_path / "big.jpg", max_side=300)
    assert full == (1200, 1800) and got.shape == (200, 300, 3)
    assert asked[0] == (300, 200)  # decoded at 1/4 (450 x 300), never at full size


def test_reduced_large_image_gives_the_full_image_mask(weights, tmp_path, monkeypatch):
    """Reducing a 2400 x 1600 image to 512 before the model's 32 px resize changes almost
    nothing: the mask equals the one predicted from the full-size array."""
    image, _ = synthetic_case(seed=4, index=1, shape=(1600, 2400))
    Image.fromarray(image).save(tmp_path / "big.png")
    monkeypatch.setattr(imageio, "MAX_SIDE", 512)
    predict_files(weights, [tmp_path / "big.png"], tmp_path / "out", InferenceOptions(tta=False))
    with Image.open(tmp_path / "out" / "big_mask.png") as im:
        got = np.asarray(im) > 127
    model, cfg, norm = load_model(weights)
    want = predict_mask(model, cfg, norm, image, tta=False)
    assert got.shape == (1600, 2400) and (got == want).mean() > 0.99


@pytest.mark.parametrize("shape", [(30, 90), (90, 30), (17, 17), (5, 300)])
def test_any_aspect_ratio(weights, tmp_path, shape):
    Image.fromarray(pattern(*shape)).save(tmp_path / "x.png")
    predict_files(weights, [tmp_path / "x.png"], tmp_path, InferenceOptions(tta=False))
    with Image.open(tmp_path / "x_mask.png") as im:
        assert im.size == (shape[1], shape[0]) and set(np.unique(np.asarray(im))) <= {0, 255}


@pytest.mark.parametrize("src, dst", [((7, 9), (50, 31)), ((32, 32), (5, 4)), ((3, 5), (3, 5))])
def test_upsample_mask_matches_torch_bilinear(src, dst):
    logits = torch.randn(1, 1, *src, generator=torch.Generator().manual_seed(0))
    ref = F.interpolate(logits, size=dst, mode="bilinear", align_corners=False)[0, 0].numpy()
    got = upsample_mask(logits[0, 0].numpy(), dst, rows=7)  # several strips
    sure = np.abs(ref) > 1e-5
    np.testing.assert_array_equal(got[sure], ref[sure] > 0)


def test_overlay_draws_the_mask_outline(weights, tmp_path, monkeypatch):
    image = np.full((40, 60, 3), 120, np.uint8)
    Image.fromarray(image).save(tmp_path / "gray.png")
    mask = np.zeros((40, 60), bool)
    mask[10:30, 15:50] = True
    monkeypatch.setattr("seglib.infer.predict.predict_mask", lambda *a, **k: mask)
    assert main(["predict", "--weights", str(weights), "--out", str(tmp_path / "o"),
                 "--overlay", str(tmp_path / "gray.png")]) == 0  # fmt: skip
    with Image.open(tmp_path / "o" / "gray_overlay.png") as im:
        drawn = (np.asarray(im) != 120).any(-1)
    inner = np.zeros_like(mask)
    inner[11:29, 16:49] = True  # pixels whose 4 neighbours are all in the mask
    np.testing.assert_array_equal(drawn, mask & ~inner)  # a 1-pixel inner outline
    assert (np.asarray(Image.open(tmp_path / "o" / "gray_mask.png")) > 0).sum() == mask.sum()


def test_mask_write_is_atomic(weights, tmp_path, monkeypatch):
    image, _ = synthetic_case(seed=1, index=0, shape=(30, 40))
    Image.fromarray(image).save(tmp_path / "x.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "x_mask.png").write_bytes(b"previous mask")
    save = Image.Image.save

    def crash(self, fp, *a, **k):  # write half a PNG, then fail like a full disk
        if hasattr(fp, "write"):
            fp.write(b"\x89PNG\r\n")
            raise OSError(28, "No space left on device")
        return save(self, fp, *a, **k)

    monkeypatch.setattr(Image.Image, "save", crash)
    with pytest.raises(OSError, match="No space left"):
        predict_files(weights, [tmp_path / "x.png"], out, InferenceOptions(tta=False))
    assert (out / "x_mask.png").read_bytes() == b"previous mask"
    assert sorted(p.name for p in out.iterdir()) == ["x_mask.png"]  # no temp file left


def test_good_images_predicted_bad_ones_reported_together(weights, tmp_path, capsys):
    image, _ = synthetic_case(seed=1, index=0, shape=(30, 40))
    for name in ("a.png", "c.png"):
        Image.fromarray(image).save(tmp_path / name)
    (tmp_path / "b.png").write_text("not an image")
    Image.fromarray(image).save(tmp_path / "d.png")
    (tmp_path / "d.png").write_bytes((tmp_path / "d.png").read_bytes()[:200])  # truncated
    paths = [tmp_path / n for n in ("a.png", "b.png", "missing.png", "c.png", "d.png")]
    out = tmp_path / "out"
    assert main(["predict", "--weights", str(weights), "--out", str(out), *map(str, paths)]) == 1
    cap = capsys.readouterr()
    err = cap.err.strip().splitlines()
    assert err[0] == "error: 3 of 5 images not predicted (nothing written for them):", err
    want = [("b.png", "cannot read image", "re-download or re-export it, or remove it"),
            ("missing.png", "no such image file", "check the path"),
            ("d.png", "cannot read image", "re-download or re-export it, or remove it")]  # fmt: skip
    assert len(err) == 4
    for line, (name, what, remedy) in zip(err[1:], want):
        assert line.startswith(f"  {tmp_path / name}: {what}") and line.endswith(remedy), line
    assert sorted(p.name for p in out.iterdir()) == ["a_mask.png", "c_mask.png"]
    assert cap.out.split() == [str(out / "a_mask.png"), str(out / "c_mask.png")]


def test_every_image_bad_leaves_no_output_folder(weights, tmp_path, capsys):
    (tmp_path / "b.png").write_text("not an image")
    out = tmp_path / "masks"
    argv = ["predict", "--weights", str(weights), "--out", str(out)]
    assert main([*argv, str(tmp_path / "b.png"), str(tmp_path / "missing.png")]) == 1
    assert capsys.readouterr().err.startswith("error: 2 of 2 images not predicted")
    assert not out.exists()


def test_refused_before_writing_anything(weights, tmp_path, capsys):
    image, _ = synthetic_case(seed=1, index=0, shape=(30, 40))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.fromarray(image).save(tmp_path / "a" / "x.png")
    Image.fromarray(image).save(tmp_path / "b" / "x.jpg")
    out = tmp_path / "out"
    argv = ["predict", "--weights", str(weights), "--out", str(out)]
    assert main(argv + [str(tmp_path / "a" / "x.png"), str(tmp_path / "b" / "x.jpg")]) == 2
    err = capsys.readouterr().err
    assert f"error: {tmp_path / 'b' / 'x.jpg'}: same name as {tmp_path / 'a' / 'x.png'}" in err
    assert not out.exists()
    (tmp_path / "file").write_text("")
    argv[-1] = str(tmp_path / "file")
    assert main(argv + [str(tmp_path / "a" / "x.png")]) == 2
    assert f"error: {tmp_path / 'file'}: exists and is not a folder" in capsys.readouterr().err


def test_decompression_bomb_is_refused_with_the_file_named(tmp_path, monkeypatch):
    Image.fromarray(pattern(100, 100)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(PH2Error, match="bomb.png: image too large to open safely"):
        read_image(tmp_path / "bomb.png")


@pytest.fixture(scope="module")
def shipped_small(tmp_path_factory) -> Path:
    """The shipped weights with the robust pipeline (its two input sides) and a 128 px training
    size: input sides 128 and 192 instead of 192 and 288, the same net at under half the cost."""
    ckpt = checkpoint.load_checkpoint(DEFAULT_WEIGHTS, "model")
    ckpt["config"] = {**ckpt["config"], "size": 128, "pipeline": "robust"}
    path = tmp_path_factory.mktemp("shipped") / "best.pt"
    checkpoint.save(path, ckpt)
    return path


def view_by_view(model, x):
    """TTA as it was before batching: one fp32 forward per dihedral map, summed in order."""
    total = None
    for k in range(N_MAPS):
        y = undo_dihedral(model(dihedral(x, k)), k).float()
        total = y if total is None else total + y
    return total / N_MAPS


@pytest.mark.parametrize("precision, n", [("fp32", 4), ("bf16", 2)])
def test_fast_path_masks_agree_with_the_old_fp32_path(shipped_small, tmp_path, monkeypatch,
                                                      precision, n):  # fmt: skip
    """``predict`` (channels-last, the 8 views in one batch, prefetch and writer threads) on
    synthetic ISIC-style JPEGs: the masks are those of the old path (fp32, contiguous model,
    one view per forward, file by file) exactly in fp32, and within IoU 0.995 in bf16."""
    root = make_synthetic_pairs(tmp_path / "d", n=n, seed=3, shape=(150, 200))
    paths = sorted(root.glob("*.jpg"))
    predict_files(shipped_small, paths, tmp_path / "out", InferenceOptions(precision=precision))
    model, cfg, norm = load_model(shipped_small)  # fp32, as loaded
    monkeypatch.setattr(predict_module, "tta_logits", lambda m, x, **kw: view_by_view(m, x))
    for path in paths:
        image, full = read_image(path)
        want = predict_mask(model, cfg, norm, image, out_size=full)
        with Image.open(tmp_path / "out" / f"{path.stem}_mask.png") as im:
            got = np.asarray(im) > 127
        assert 0.01 < want.mean() < 0.6, path.name  # a lesion, not an empty or full mask
        if precision == "fp32":
            np.testing.assert_array_equal(got, want, err_msg=path.name)
        else:
            assert (got & want).sum() / (got | want).sum() >= 0.995, path.name


@pytest.mark.parametrize("command", ["predict", "score", "robustness"])
def test_precision_option_reaches_the_runtime(weights, synth_tree, tmp_path, monkeypatch,
                                              capsys, command):  # fmt: skip
    """``--precision`` is passed to the runtime choice (default auto); fp16 on CPU is refused
    with the runtime's message."""
    from seglib import runtime as rt_module
    from seglib.infer import score
    from seglib.robustness import suite

    asked = []

    def spy(dev="auto", precision="auto"):
        asked.append(precision)
        return rt_module.runtime(dev, precision)

    for module in (predict_module, score, suite):
        monkeypatch.setattr(module, "runtime", spy)
    image = tmp_path / "a.png"
    Image.fromarray(pattern(20, 30)).save(image)
    argv = {
        "predict": ["predict", str(image), "--out", str(tmp_path / "o")],
        "score": ["score", "--data", str(synth_tree), "--out", str(tmp_path / "s.csv")],
        "robustness": [
            "robustness",
            "--data",
            str(synth_tree),
            "--split",
            "val",
            "--kinds",
            "blur",
        ],
    }[command]
    argv += [str(weights)] if command == "robustness" else ["--weights", str(weights)]
    argv += ["--no-tta"]
    assert main(argv) == 0
    assert main([*argv, "--precision", "bf16"]) == 0
    assert main([*argv, "--precision", "fp32"]) == 0
    assert asked == ["auto", "bf16", "fp32"]
    assert main([*argv, "--precision", "fp16"]) == 2
    assert "error: --precision fp16: CUDA only" in capsys.readouterr().err


@pytest.mark.parametrize("net", ["segnet", "unet", "unet2"])
def test_fold_batchnorm_keeps_the_function(net):
    """Every batch norm of each net is folded away and the logits stay those of the net with
    its batch norms (random statistics and affine parameters), to float rounding."""
    torch.manual_seed(0)
    model = models.build(net, width=4, depth=2)
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.2, 3)
        bn.weight.data.uniform_(0.5, 2)
        bn.bias.data.uniform_(-1, 1)
    model.eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        want = model(x)
        folded = predict_module.fold_batchnorm(model)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
        torch.testing.assert_close(folded(x), want, rtol=1e-4, atol=1e-5)
