"""Robustness suite on the tiny synthetic tree: full-resolution scoring checked
against masks known from the generator, per-(kind, image) determinism, and the CLI."""

import json

import numpy as np
import pytest
import torch

from seglib import models
from seglib.cli import main
from seglib.data.synth import synthetic_case
from seglib.engine.train import RunConfig
from seglib.infer.options import InferenceOptions
from seglib.robustness import artefacts, suite

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """An untrained width-4 UNet checkpoint at 32 px (predictions arbitrary but fixed)."""
    torch.manual_seed(0)
    cfg = RunConfig(size=32, width=4, depth=3)
    model = models.build("unet", width=4, depth=3)
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    norm = torch.tensor([[0.6, 0.5, 0.4], [0.2, 0.2, 0.2]]).view(2, 1, 3, 1, 1)
    torch.save({"model": model.state_dict(), "config": cfg.to_dict(), "norm": norm}, path)
    return path


def test_full_resolution_scores_match_the_generator_masks(synth_tree, ckpt, cache, monkeypatch):
    """Predicting 'everything is lesion' scores IoU = lesion fraction of the scored mask: the
    clean row equals the generator's own mask fraction at 48x64; kinds that leave the mask
    alone score the same, and small_lesion lands in its 0.5-3% range."""
    monkeypatch.setattr(
        suite,
        "predict_mask",
        lambda m, c, n, image, tta, pipeline=None, rt=None: np.ones(image.shape[:2], bool),
    )
    res = suite.evaluate(ckpt, synth_tree, split="test", progress=False)
    (name,) = res["names"]  # 6 cases: one test image
    truth = synthetic_case(1, int(name[3:]) - 1, (48, 64))[1]
    rows = {r["kind"]: r for r in res["rows"]}
    assert list(rows) == ["clean", *artefacts.KINDS]
    assert rows["clean"]["iou"] == pytest.approx(truth.mean(), abs=1e-6)
    for kind in ("disc", "ruler", "ink", "hair", "fov_border", "vignette", "jpeg", "rot90"):
        assert rows[kind]["iou"] == pytest.approx(truth.mean(), abs=1e-6)
        assert rows[kind]["drop_iou"] == pytest.approx(0, abs=1e-6)
    assert 0.005 <= rows["small_lesion"]["iou"] <= 0.03
    assert rows["small_lesion"]["drop_iou"] == pytest.approx(
        truth.mean() - rows["small_lesion"]["iou"]
    )


def dark_is_lesion(model, cfg, norm, image, **kw):
    """A stand-in net that looks at its input: lesion where the pixel is darker than 100."""
    return image.mean(axis=-1) < 100


def iou(pred, mask) -> float:
    union = (pred | mask).sum()
    return float((pred & mask).sum() / union) if union else 1.0


def test_the_net_sees_each_artefact(synth_tree, ckpt, cache, monkeypatch):
    """With a stand-in whose output depends on its input, each kind's per-image IoU is what the
    stand-in scores on that image with the artefact applied (recomputed here through the
    artefact API and a plain IoU), and a colour or exposure artefact moves it off the clean
    score: the suite gives the net the transformed image, not the clean one."""
    monkeypatch.setattr(suite, "predict_mask", dark_is_lesion)
    kinds = ["exposure", "colour_cast", "blur", "rot90"]
    res = suite.evaluate(ckpt, synth_tree, split="val", kinds=kinds, seed=3, progress=False)
    rows = {r["kind"]: r for r in res["rows"]}
    for i, name in enumerate(res["names"]):
        image, mask = synthetic_case(1, int(name[3:]) - 1, (48, 64))
        mask = mask.astype(bool)
        clean = iou(dark_is_lesion(None, None, None, image), mask)
        assert rows["clean"]["iou_per_image"][i] == pytest.approx(clean, abs=1e-6)
        for kind in kinds:
            img, msk = artefacts.apply(kind, image, mask, suite.rng_for(3, kind, name))
            want = iou(dark_is_lesion(None, None, None, img), msk)
            assert rows[kind]["iou_per_image"][i] == pytest.approx(want, abs=1e-6), kind
    assert rows["exposure"]["iou"] != pytest.approx(rows["clean"]["iou"], abs=1e-3)
    assert rows["colour_cast"]["iou"] != pytest.approx(rows["clean"]["iou"], abs=1e-3)


def test_each_image_gets_the_same_artefact_whatever_else_runs(synth_tree, ckpt, cache):
    full = suite.evaluate(
        ckpt, synth_tree, split="val", options=InferenceOptions(tta=False), progress=False
    )
    one = suite.evaluate(
        ckpt, synth_tree, split="val", kinds=["jpeg"], options=InferenceOptions(tta=False)
    )
    assert [r["kind"] for r in one["rows"]] == ["clean", "jpeg"]
    by_kind = {r["kind"]: r for r in full["rows"]}
    assert one["rows"][1]["iou_per_image"] == by_kind["jpeg"]["iou_per_image"]


def test_seen_in_training_follows_the_checkpoints_augmentation():
    assert suite.seen_in_training({"augment": "strong"}) == set(artefacts.TRAINED_KINDS)
    assert suite.seen_in_training({"augment": True}) == {"rot90"}
    assert suite.seen_in_training({"augment": False}) == set()
    assert suite.seen_in_training({"augment": "mixed"}) == set(artefacts.TRAINED_KINDS)


def test_cli_prints_the_table_and_writes_json(synth_tree, ckpt, cache, tmp_path, capsys):
    out = tmp_path / "r" / "rob.json"
    argv = ["robustness", str(ckpt), "--data", str(synth_tree), "--json", str(out)]
    assert main([*argv, "--split", "val", "--no-tta", "--kinds", "blur,rot90"]) == 0
    text = capsys.readouterr().out
    assert "| artefact | seen in training |" in text and "| rot90 | yes |" in text
    assert "| blur | no |" in text
    saved = json.loads(out.read_text())
    assert saved["split"] == "val" and [r["kind"] for r in saved["rows"]] == [
        "clean",
        "blur",
        "rot90",
    ]
    card = tmp_path / "card.md"
    card.write_text("# card\n<!-- robustness:begin -->\nold\n<!-- robustness:end -->\ntail\n")
    assert main([*argv, "--no-tta", "--kinds", "jpeg", "--card", str(card)]) == 0
    lines = card.read_text().splitlines()
    assert lines[0] == "# card" and lines[-1] == "tail" and "old" not in lines
    assert lines[2].startswith("| artefact |") and lines[4].startswith("| clean | - |")
    assert lines[5].startswith("| jpeg | no |") and lines[6] == "<!-- robustness:end -->"
    card.write_text("no markers\n")
    assert main([*argv, "--no-tta", "--kinds", "jpeg", "--card", str(card)]) == 2
    assert "no <!-- robustness:begin -->" in capsys.readouterr().err
    assert main([*argv, "--kinds", "smudge"]) == 2
    assert "error: unknown artefact 'smudge'" in capsys.readouterr().err
    assert main(["robustness", str(tmp_path / "nope.pt"), "--data", str(synth_tree)]) == 2
