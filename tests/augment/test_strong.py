"""Strong training augmentation: image and mask share every geometric transform, the
hand-worked zoom lands where expected, discs hide the lesion under them, the batch stays a valid
training batch, and a run trains with ``augment="strong"``."""

import pytest
import torch

from seglib.augment import strong
from seglib.augment.strong import (
    PATCHES,
    GeometryParams,
    affine,
    augment_strong,
    paste_discs,
    random_geometry,
)
from seglib.data.ph2 import load_ph2, split_indices
from seglib.engine import grid
from seglib.engine.options import FitOptions
from seglib.engine.train import RunConfig, fit

pytestmark = pytest.mark.usefixtures("one_thread")


def blobs(b=4, h=32, w=32, seed=0):
    """Masks (B,1,H,W) of random axis-aligned rectangles, no symmetry."""
    g = torch.Generator().manual_seed(seed)
    y = torch.zeros(b, 1, h, w)
    for i in range(b):
        top, left = torch.randint(0, h // 2, (2,), generator=g).tolist()
        y[i, 0, top : top + 3 + i * 2, left : left + 5 + i] = 1
    return y


def test_zoom_out_by_half_moves_a_block_where_worked_out_by_hand():
    y = torch.zeros(1, 1, 8, 8)
    y[..., 2:6, 2:6] = 1  # pixels [2,6): centre 4, half-side 2 -> scaled 0.5: [3,5)
    img = y.expand(1, 3, 8, 8).clone()
    half = torch.tensor([0.5])
    expect = torch.zeros(1, 1, 8, 8)
    expect[..., 3:5, 3:5] = 1
    _, m = affine(img, y, half, half, torch.zeros(1, 2), torch.zeros(1, 3, 1, 1))
    assert torch.equal(m, expect)
    # shift x by half a half-frame = 2 pixels of 8
    _, m = affine(img, y, half, half, torch.tensor([[0.5, 0.0]]), torch.zeros(1, 3, 1, 1))
    assert torch.equal(m, expect.roll(2, dims=-1))


def test_identity_affine_changes_nothing():
    y = blobs()
    img = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    one = torch.ones(4)
    out, m = affine(img, y, one, one, torch.zeros(4, 2), torch.zeros(4, 3, 1, 1))
    torch.testing.assert_close(out, img)
    assert torch.equal(m, y)


@pytest.mark.parametrize("seed", range(3))
def test_image_and_mask_get_the_same_geometry(seed):
    """The mask copied into the image channels comes out equal to the output mask (zoom in, so
    no fill is involved and bilinear > 0.5 is the mask's own rule)."""
    y = blobs(seed=seed)
    img = y.expand(-1, 3, -1, -1).clone()
    g = torch.Generator().manual_seed(seed)
    out, m = random_geometry(
        img, y, g, GeometryParams(p_small=0.0, scale=(1.05, 1.6), aspect=1.0, noise=0.0)
    )
    assert not torch.equal(m, y)  # it did move
    for c in range(3):
        assert torch.equal((out[:, c : c + 1] > 0.5).float(), m)


def test_small_lesion_mode_shrinks_the_lesion_into_the_range():
    y = torch.zeros(6, 1, 64, 64)
    y[..., 16:48, 16:48] = 1  # 25% of the frame
    img = torch.rand(6, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    _, m = random_geometry(img, y, g, GeometryParams(p_small=1.0, small=(0.01, 0.03), aspect=1.0))
    frac = m.mean(dim=(1, 2, 3))
    assert ((frac > 0.005) & (frac < 0.045)).all(), frac  # one-pixel rounding at 64 px


def test_discs_hide_the_lesion_and_leave_the_rest():
    y = torch.ones(8, 1, 32, 32)
    img = torch.full((8, 3, 32, 32), 0.5)
    out, m = paste_discs(img, y, torch.Generator().manual_seed(0), p=1.0)
    changed = (out - img).abs().amax(1, keepdim=True) > 1e-6
    assert changed.flatten(1).any(1).all()  # every image got a disc
    edges = torch.cat([changed[..., 0, :], changed[..., -1, :], changed[..., :, 0]], -1)
    edges = torch.cat([edges, changed[..., :, -1]], -1)
    assert edges.flatten(1).any(1).all()  # each disc reaches the edge of the field
    assert (m[~changed] == 1).all()  # mask untouched away from discs
    assert (m == 0).any() and ((m == 0) <= changed).all()


def test_augment_strong_keeps_a_valid_batch_and_is_deterministic():
    norm = torch.tensor([[0.6, 0.5, 0.4], [0.2, 0.2, 0.2]]).view(2, 1, 3, 1, 1)
    img = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    x = (img - norm[0]) / norm[1]
    y = blobs()
    a = augment_strong(x, y, torch.Generator().manual_seed(5), norm)
    b = augment_strong(x, y, torch.Generator().manual_seed(5), norm)
    c = augment_strong(x, y, torch.Generator().manual_seed(6), norm)
    assert a[0].shape == x.shape and a[1].shape == y.shape and a[0].dtype == x.dtype
    assert set(a[1].unique().tolist()) <= {0.0, 1.0}
    back = a[0] * norm[1] + norm[0]
    assert back.min() >= -1e-5 and back.max() <= 1 + 1e-5
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_cli_option_reaches_the_config_and_defaults_stay():
    from seglib.cli import parser

    assert all(c.augment is True for c in grid.configs("smoke", nets=["unet"]))
    a = parser().parse_args(["run", "--augment", "strong"])
    assert a.augment == "strong"
    cfg = grid.configs("smoke", nets=["unet"], losses_=["bce"], augment="strong")[0]
    assert cfg.augment == "strong"


def skin_and_lesion(b=4, h=32, w=32):
    """Pinkish skin (0.8, 0.6, 0.5) with the ``blobs`` lesions in brown (0.4, 0.25, 0.15)."""
    y = blobs(b, h, w)
    skin = torch.tensor([0.8, 0.6, 0.5]).view(1, 3, 1, 1)
    lesion = torch.tensor([0.4, 0.25, 0.15]).view(1, 3, 1, 1)
    return skin * (1 - y) + lesion * y, y


def test_hair_darkens_thin_strands_and_leaves_the_rest():
    img, _ = skin_and_lesion(h=64, w=64)
    out = strong.draw_hair(img, torch.Generator().manual_seed(0), p=1.0, strands=(10, 10))
    changed = (out != img).any(1)
    assert changed.flatten(1).any(1).all()  # every image got hair
    assert 0 < changed.float().mean() < 0.3  # strands, not a fill
    assert (out.amax(1)[changed] <= 0.25 + 1e-6).all()  # dark brown to black
    assert torch.equal(out[~changed[:, None].expand_as(out)], img[~changed[:, None].expand_as(img)])
    assert torch.equal(strong.draw_hair(img, torch.Generator().manual_seed(0), p=0.0), img)


def test_fov_border_blackens_the_outside_and_the_mask_follows():
    img, y = skin_and_lesion()
    y = torch.ones_like(y)  # all lesion: the border must take the mask away where it is dark
    out, m = strong.fov_border(img, y, torch.Generator().manual_seed(0), p=1.0)
    dark = out.amax(1, keepdim=True) < 0.1
    assert dark[:, :, 0, 0].all() and not dark[:, :, 16, 16].any()  # corners out, centre in
    hidden = m < 0.5
    assert hidden.any() and (out.amax(1, keepdim=True)[hidden] < 0.45).all()  # aligned
    assert (m[~hidden] == 1).all() and torch.equal(m, m.round())


def test_colour_jitter_recolours_and_keeps_the_range():
    img, _ = skin_and_lesion()
    out = strong.colour_jitter(img, torch.Generator().manual_seed(0))
    assert out.shape == img.shape and 0 <= out.min() and out.max() <= 1
    assert ((out - img).abs().flatten(1).amax(1) > 0.02).all()  # every image recoloured
    ratio = out.mean(dim=(2, 3)) / img.mean(dim=(2, 3))
    assert (ratio.amax(1) / ratio.amin(1) > 1.01).any()  # channels scaled unequally


def test_augment_strong_applies_every_part_to_the_batch(monkeypatch):
    """Each part runs once per batch on what the previous part made (spies pass through)."""
    calls = []

    def spy(name):
        real = getattr(strong, name)

        def wrapped(*args, **kwargs):
            calls.append((name, kwargs.get("geometry")))
            return real(*args, **kwargs)

        monkeypatch.setattr(strong, name, wrapped)

    for name in ("random_geometry", "paste_discs", "draw_hair", "fov_border", "colour_jitter"):
        spy(name)
    img, y = skin_and_lesion()
    norm = torch.tensor([[0.5] * 3, [0.25] * 3]).view(2, 1, 3, 1, 1)
    augment_strong((img - 0.5) / 0.25, y, torch.Generator().manual_seed(0), norm, patches=0.15)
    assert [c[0] for c in calls] == [
        "random_geometry",
        "paste_discs",
        "draw_hair",
        "fov_border",
        "colour_jitter",
    ]
    assert calls[0][1].patches == 0.15  # the patch amplitude reaches the geometry


@pytest.mark.parametrize(("augment", "amplitude"), [("mixed_patchy_mild", 0.15),
                                                    ("mixed_patchy", 0.3), ("strong", 0.0)])  # fmt: skip
def test_fit_passes_each_modes_patch_amplitude(synth_tree, cache, tmp_path, monkeypatch, augment,
                                               amplitude):  # fmt: skip
    """A run with ``augment=...`` trains strong batches with that mode's blotch amplitude (the
    values of the documented modes, written out here) and a valid result."""
    seen = []
    real = strong.random_geometry

    def spy(*args, **kwargs):
        seen.append(kwargs["geometry"].patches)
        return real(*args, **kwargs)

    monkeypatch.setattr(strong, "random_geometry", spy)
    data = load_ph2(synth_tree, size=32, progress=False)
    cfg = RunConfig(size=32, width=4, depth=3, epochs=2, batch_size=2, augment=augment)
    res = fit(
        cfg, data, split_indices(len(data)), tmp_path / "run", FitOptions(quiet=True, tta=False)
    )
    assert seen and set(seen) == {amplitude}
    assert 0.0 <= res["iou"] <= 1.0 and res["iou_per_image"]


def test_mixed_augments_half_the_batches_strongly(synth_tree, cache, tmp_path, monkeypatch):
    """``augment="mixed"``: each batch draws a coin from the run's generator; heads (p = 0.5)
    gets augment_strong, tails the basic augmentation, so about half of many batches are strong
    and the choice is reproducible."""
    from seglib.engine import train

    calls = {"strong": 0, "basic": 0}
    real_strong, real_basic = train.augment_strong, train.augment

    def strong(*a, **k):
        calls["strong"] += 1
        return real_strong(*a, **k)

    def basic(*a, **k):
        calls["basic"] += 1
        return real_basic(*a, **k)

    monkeypatch.setattr(train, "augment_strong", strong)
    monkeypatch.setattr(train, "augment", basic)
    data = load_ph2(synth_tree, size=32, progress=False)
    cfg = RunConfig(size=32, width=2, depth=3, epochs=20, batch_size=1, augment="mixed")
    fit(cfg, data, split_indices(len(data)), tmp_path / "run", FitOptions(quiet=True, tta=False))
    n = calls["strong"] + calls["basic"]
    assert n == 20 * len(split_indices(len(data))[0])  # every batch augmented exactly once
    assert 0.25 * n <= calls["strong"] <= 0.75 * n
    from seglib.cli import parser

    assert parser().parse_args(["run", "--augment", "mixed"]).augment == "mixed"


def test_patches_vary_only_the_skin_around_a_zoomed_out_photo():
    """``patches``: the same geometry (drawn before the fill), the same pixels where the photo
    is, blotchier skin where it is not; without it, the draws and the result are unchanged."""
    y = torch.zeros(4, 1, 64, 64)
    y[..., 16:48, 16:48] = 1
    img = torch.full((4, 3, 64, 64), 0.6)  # one flat colour: any variation is the fill's
    plain, m0 = random_geometry(
        img, y, torch.Generator().manual_seed(5), GeometryParams(p_small=1.0, noise=0.0)
    )
    blotchy, m1 = random_geometry(
        img,
        y,
        torch.Generator().manual_seed(5),
        GeometryParams(p_small=1.0, noise=0.0, patches=0.3),
    )
    assert torch.equal(m0, m1)
    torch.testing.assert_close(
        plain, torch.full_like(plain, 0.6), atol=1e-3, rtol=0
    )  # skin = photo
    assert (blotchy - 0.6).abs().amax() > 0.03  # blotches of up to 30% of 0.6
    assert (blotchy - 0.6).abs().amax() <= 0.6 * 0.3 * 1.3  # bicubic overshoot of the field
    inside = m1.bool().expand_as(blotchy)  # the photo, pasted at alpha >= 1/2
    assert (blotchy[inside] - 0.6).abs().amax() < (blotchy[~inside] - 0.6).abs().amax()


@pytest.mark.parametrize("name", ["mixed_patchy", "mixed_patchy_mild"])
def test_mixed_patchy_reaches_the_config_and_counts_as_trained(name):
    from seglib.cli import parser, run_configs
    from seglib.robustness import artefacts, suite

    a = parser().parse_args(["run", "--augment", name, "--preset", "smoke"])
    assert {c.augment for c in run_configs(a)} == {name}
    assert suite.seen_in_training({"augment": name}) == set(artefacts.TRAINED_KINDS)


def test_cli_offers_every_augmentation():
    from seglib.cli.options import AUGMENTS

    assert set(AUGMENTS) == {"basic", *PATCHES}
