"""seglib.data.synth: layout, determinism, plausibility and learnability of synthetic PH2."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from seglib.data.fetch import IMAGES_DIR
from seglib.data.ph2 import load_ph2
from seglib.data.synth import make_synthetic_ph2, synthetic_case
from seglib.errors import PH2Error


def case_paths(root, name):
    case = root / IMAGES_DIR / name
    return (
        case / f"{name}_Dermoscopic_Image" / f"{name}.bmp",
        case / f"{name}_lesion" / f"{name}_lesion.bmp",
    )


def test_official_layout_readable_by_load_ph2(tmp_path, cache):
    root = make_synthetic_ph2(tmp_path, n=12, seed=5, shape=(40, 56))
    assert root == tmp_path / "PH2Dataset"
    names = sorted(p.name for p in (root / IMAGES_DIR).iterdir() if not p.name.startswith("."))
    assert names == [f"IMD{i:03d}" for i in range(1, 13)]
    image_file, mask_file = case_paths(root, "IMD012")
    image, mask = synthetic_case(5, 11, (40, 56))
    with Image.open(image_file) as im, Image.open(mask_file) as m:
        assert (im.format, im.mode, im.size) == ("BMP", "RGB", (56, 40))
        assert (m.format, m.mode, m.size) == ("BMP", "1", (56, 40))
        assert np.array_equal(np.asarray(im), image) and np.array_equal(np.asarray(m), mask)
    d = load_ph2(root, size=32)
    assert d.names == names and d.images.shape == (12, 3, 32, 32)


def test_deterministic_per_seed(tmp_path):
    a = make_synthetic_ph2(tmp_path / "a", n=3, seed=7, shape=(32, 48))
    b = make_synthetic_ph2(tmp_path / "b", n=5, seed=7, shape=(32, 48))
    c = make_synthetic_ph2(tmp_path / "c", n=3, seed=8, shape=(32, 48))
    for name in ("IMD001", "IMD002", "IMD003"):
        (ia, ma), (ib, mb), (ic, mc) = (case_paths(r, name) for r in (a, b, c))
        assert ia.read_bytes() == ib.read_bytes() and ma.read_bytes() == mb.read_bytes()
        assert ia.read_bytes() != ic.read_bytes() and ma.read_bytes() != mc.read_bytes()


def test_lesions_and_images_look_like_dermoscopy():
    """All 200 default cases: lesion fraction in [3%, 90%]; the lesion darker than the skin
    around it; corners darker than the centre (vignette); not all lesions the same colour."""
    fractions, lesion_colours = [], []
    for i in range(200):
        image, mask = synthetic_case(0, i)
        assert image.shape == (192, 256, 3) and image.dtype == np.uint8
        fractions.append(mask.mean())
        gray = image.astype(float).mean(2)
        skin = np.zeros_like(mask)
        skin[24:-24, 32:-32] = True  # the middle of the image, outside the lesion
        skin &= ~mask
        corners = [gray[:12, :12], gray[:12, -12:], gray[-12:, :12], gray[-12:, -12:]]
        assert gray[mask].mean() < gray[skin].mean() - 30
        assert np.mean(corners) < gray[skin].mean() - 5
        lesion_colours.append(image[mask].mean(0))
    fractions = np.array(fractions)
    assert fractions.min() >= 0.03 and fractions.max() <= 0.9
    assert fractions.std() > 0.1  # small and large lesions
    assert np.array(lesion_colours).std(0).min() > 8  # brown to dark


def test_idempotent_and_careful(tmp_path):
    root = make_synthetic_ph2(tmp_path, n=4, seed=0, shape=(32, 48))
    image_file, _ = case_paths(root, "IMD004")
    stamp = image_file.stat().st_mtime_ns
    assert make_synthetic_ph2(tmp_path, n=4, seed=0, shape=(32, 48)) == root
    assert image_file.stat().st_mtime_ns == stamp  # same parameters: kept as is
    make_synthetic_ph2(tmp_path, n=2, seed=0, shape=(32, 48))
    assert sorted(p.name for p in (root / IMAGES_DIR).glob("IMD*")) == ["IMD001", "IMD002"]
    other = tmp_path / "real" / "PH2Dataset" / IMAGES_DIR / "IMD001"
    other.mkdir(parents=True)
    with pytest.raises(PH2Error, match="not written by make_synthetic_ph2"):
        make_synthetic_ph2(tmp_path / "real", n=2)
    assert other.is_dir()


# --- learnability ----------------------------------------------------------------------------


def tiny_net(ch: int = 8) -> nn.Module:
    """Full-resolution conv, one stride-2 conv, two dilated convs, upsample, 3x3 head."""

    def block(cin, cout, stride=1, dilation=1):
        conv = nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation)
        return [conv, nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        *block(3, ch),
        *block(ch, 2 * ch, stride=2),
        *block(2 * ch, 2 * ch, dilation=2),
        *block(2 * ch, 2 * ch, dilation=4),
        nn.Upsample(scale_factor=2, mode="bilinear"),
        nn.Conv2d(2 * ch, 1, 3, padding=1),
    )


def iou_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    inter = (pred & target).flatten(1).sum(1).float()
    union = (pred | target).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


@pytest.fixture
def one_thread():
    """Train on one thread: with another torch job on the same two cores, two threads each
    spin on their barriers and run 10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_learnable_by_a_tiny_net(tmp_path, cache, one_thread):
    """48 training images at 64 px, 60 Adam steps (a few seconds): IoU > 0.8 on 16 others
    (about 0.93 for any torch seed tried; a global grey threshold reaches about 0.73)."""
    d = load_ph2(make_synthetic_ph2(tmp_path, n=64, seed=3, shape=(96, 128)), size=64)
    x, y = d.images.float() / 255 - 0.5, d.masks.float()
    torch.manual_seed(0)
    net, steps = tiny_net(), 60
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-2, total_steps=steps)
    for _ in range(steps):
        idx = torch.randint(0, 48, (16,))
        loss = nn.functional.binary_cross_entropy_with_logits(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    with torch.no_grad():
        iou = iou_per_image(net(x[48:]) > 0, y[48:] > 0.5)
    print(f"synthetic learnability: mean IoU {iou.mean():.3f}")
    assert iou.mean() > 0.8, iou


def test_synth_folders_are_named_synthetic_by_their_marker(tmp_path, cache):
    """A folder written by ``synth`` is named synthetic wherever it is loaded from, also after a
    rename; the same files without the marker are named as any other data."""
    from seglib.data.ph2 import load_dataset
    from seglib.data.synth import make_synthetic_pairs

    ph2 = make_synthetic_ph2(tmp_path / "a", n=3, seed=1, shape=(32, 48))
    assert load_dataset(ph2, size=16).source == "synthetic PH2-like data"
    pairs = make_synthetic_pairs(tmp_path / "b", n=3, seed=1, shape=(32, 48))
    assert load_dataset(pairs, size=16).source == "SyntheticISIC"
    renamed = pairs.rename(tmp_path / "lesions")
    assert load_dataset(renamed, size=16).source == "synthetic data (lesions)"
    (renamed / ".synthetic.json").unlink()
    assert load_dataset(renamed, size=16).source == "lesions"
