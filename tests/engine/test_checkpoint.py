"""Opening checkpoints from untrusted places: ``--weights FILE``, a run folder's
``last.pt`` and ``best.pt`` copied from elsewhere. A crafted pickle must never run (these tests
fail on a ``torch.load(weights_only=False)``: the payload creates a marker file), and every bad
file gets one ``error:`` line naming it, exit 2, nothing written."""

from __future__ import annotations

import contextlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import REAL_DATA, model_ckpt, tiny_config
from PIL import Image

from seglib import models, store
from seglib.cli import main
from seglib.data.synth import synthetic_case
from seglib.engine import checkpoint
from seglib.engine.options import FitOptions
from seglib.engine.train import fit

pytestmark = pytest.mark.usefixtures("one_thread")


REPO = Path(__file__).resolve().parents[2]


class Payload:
    """Unpickling this calls ``open(marker, "w")``: a file appears if the pickle is executed."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def malicious(path: Path, marker: Path, raw: bool = False) -> Path:
    """A file shaped like a seglib checkpoint whose unpickling creates ``marker``."""
    obj = {"model": Payload(marker), "config": {}, "norm": torch.zeros(2)}
    if raw:  # a plain pickle, not torch's zip format
        path.write_bytes(pickle.dumps(obj))
    else:
        torch.save(obj, path)
    return path


@contextlib.contextmanager
def payload_must_not_run(marker: Path):
    """Fail with "the payload ran" when ``marker`` appears, even if the code then crashed."""
    try:
        yield
    finally:
        assert not marker.exists(), f"the pickle's payload ran: it created {marker}"


def run_cli(argv, capsys) -> str:
    """Run the CLI in process; return its only stderr line (asserting exit 2, no traceback)."""
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def image_file(tmp_path: Path) -> Path:
    image, _ = synthetic_case(seed=3, index=0, shape=(40, 56))
    Image.fromarray(image).save(tmp_path / "lesion.png")
    return tmp_path / "lesion.png"


@pytest.mark.parametrize("raw", [False, True], ids=["torch-zip", "raw-pickle"])
def test_predict_weights_payload_never_runs(tmp_path, capsys, raw):
    marker, out = tmp_path / "PWNED", tmp_path / "masks"
    weights = malicious(tmp_path / "evil.pt", marker, raw=raw)
    with payload_must_not_run(marker):
        line = run_cli(
            ["predict", "--weights", weights, "--out", out, image_file(tmp_path)], capsys
        )
    assert line.startswith(f"error: {weights}: ")
    if raw:  # refused by the safe unpickler before it reaches the object
        assert "not a checkpoint (a plain Python pickle" in line
    else:
        assert "not a seglib checkpoint: it holds a Python object (io.open)" in line
    assert not out.exists()


def test_resume_payload_in_last_pt_never_runs(tiny_data, tmp_path, capsys):
    data, split, root = tiny_data
    run, marker = tmp_path / "run", tmp_path / "PWNED"
    run.mkdir()
    malicious(run / "last.pt", marker)
    with payload_must_not_run(marker):
        result = fit(
            tiny_config(root, epochs=1), data, split, run, FitOptions(quiet=True, tta=False)
        )
    err = capsys.readouterr().err
    assert f"warning: {run / 'last.pt'}: not a seglib checkpoint" in err
    assert "restarting this run from scratch" in err
    assert (run / "last.pt.bad").is_file()  # kept aside, never applied
    assert checkpoint.load_checkpoint(run / "last.pt", "resume")["epoch"] == 1  # trained anew
    assert store.read_json(run / "test.json") == result


def finished_results(tmp_path: Path, root: Path, best: Path | None = None) -> Path:
    """A results folder with one finished run whose best.pt is ``best`` (copied in)."""
    run = tmp_path / "results" / "unet_bce_s0"
    run.mkdir(parents=True)
    cfg = tiny_config(root).to_dict()
    store.write_json(run / "config.json", cfg)
    store.write_json(run / "history.json", [{"epoch": 1, "val_iou": 0.5, "seconds": 1.0}])
    store.write_json(run / "test.json", {"iou": 0.5})
    (run / "best.pt").write_bytes(best.read_bytes())
    return run.parent


@pytest.mark.parametrize("cmd", ["evaluate", "export"])
def test_best_pt_payload_never_runs(tiny_data, tmp_path, capsys, cmd):
    marker = tmp_path / "PWNED"
    results = finished_results(tmp_path, tiny_data[2], malicious(tmp_path / "e.pt", marker))
    dest = tmp_path / "shipped" / "best.pt"
    argv = [cmd, results] + (["--dest", dest] if cmd == "export" else [])
    with payload_must_not_run(marker):
        line = run_cli(argv, capsys)
    assert str(results / "unet_bce_s0" / "best.pt") in line and "not a seglib checkpoint" in line
    assert not dest.parent.exists()
    assert store.read_json(results / "unet_bce_s0" / "test.json") == {"iou": 0.5}  # untouched


def _truncated(tmp_path):
    good = model_ckpt(tmp_path / "good.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(good[: len(good) // 2])
    return tmp_path / "cut.pt"


def _text(tmp_path):
    (tmp_path / "notes.pt").write_text("these are my notes, not weights\n")
    return tmp_path / "notes.pt"


def _empty(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    return tmp_path / "empty.pt"


def _state_dict_only(tmp_path):  # what another program (or plain PyTorch code) saves
    torch.save(models.build("unet", width=4, depth=2).state_dict(), tmp_path / "sd.pt")
    return tmp_path / "sd.pt"


def _whole_module(tmp_path):  # torch.save(model): a pickled class, refused unread
    torch.save(models.build("unet", width=4, depth=2), tmp_path / "module.pt")
    return tmp_path / "module.pt"


def _other_width(tmp_path):  # config says width 8, weights are width 4
    path = model_ckpt(tmp_path / "w.pt", width=4)
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"]["width"] = 8
    torch.save(ckpt, path)
    return path


def _other_net(tmp_path):  # config says segnet, weights are a UNet's
    path = model_ckpt(tmp_path / "n.pt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"]["net"] = "segnet"
    torch.save(ckpt, path)
    return path


def _newer_format(tmp_path):
    path = model_ckpt(tmp_path / "new.pt")
    ckpt = torch.load(path, weights_only=True) | {"seglib_format": checkpoint.FORMAT + 1}
    torch.save(ckpt, path)
    return path


def _resume_state(tmp_path):  # a last.pt passed as --weights
    torch.save({k: 0 for k in checkpoint.KEYS["resume"]}, tmp_path / "last.pt")
    return tmp_path / "last.pt"


BAD_WEIGHTS = [
    (_truncated, "truncated or damaged"),
    (_text, "not a checkpoint (not a file written by torch.save)"),
    (_empty, "truncated or damaged"),
    (_state_dict_only, "made by another program; missing model, config, norm"),
    (_whole_module, "holds a Python object (seglib.models."),
    (_other_width, "not those of a unet of width 8"),
    (_other_net, "not those of a segnet of width 4"),
    (_newer_format, "incompatible seglib (checkpoint format 2"),
    (_resume_state, "(a resume checkpoint; missing config, norm)"),
]


@pytest.mark.parametrize(
    "make, words", BAD_WEIGHTS, ids=[make.__name__.strip("_") for make, _ in BAD_WEIGHTS]
)
def test_bad_weights_file_one_line(tmp_path, capsys, make, words):
    weights, out = make(tmp_path), tmp_path / "masks"
    line = run_cli(["predict", "--weights", weights, "--out", out, image_file(tmp_path)], capsys)
    assert line.startswith(f"error: {weights}: ") and words in line
    assert not out.exists()


def test_saved_checkpoints_load_weights_only_for_every_schedule(tiny_data, tmp_path):
    """best.pt and last.pt hold only what weights_only allows (optimizer, each scheduler's
    state, RNG states as uint8 tensors, history), and resuming from them works."""
    data, split, root = tiny_data
    for schedule in ("cosine", "plateau", "none"):
        run = tmp_path / schedule
        fit(
            tiny_config(root, epochs=1, schedule=schedule), data, split, run, FitOptions(quiet=True)
        )
        state = torch.load(run / "last.pt", weights_only=True)
        assert state["gen"].dtype == state["torch_rng"].dtype == torch.uint8
        assert checkpoint.load_checkpoint(run / "best.pt", "model")["seglib_format"] == 1
        (run / "test.json").unlink()  # resume the finished run for one more epoch
        fit(
            tiny_config(root, epochs=2, schedule=schedule), data, split, run, FitOptions(quiet=True)
        )
        assert [h["epoch"] for h in store.read_json(run / "history.json")] == [1, 2]


def test_shipped_weights_load_safely_and_predict():
    """weights/best.pt opens with weights_only=True and segments a PH2 image well (when the
    dataset is here) or at least a synthetic lesion."""
    from seglib.infer.predict import DEFAULT_WEIGHTS, load_model, predict_mask

    raw = torch.load(DEFAULT_WEIGHTS, map_location="cpu", weights_only=True)
    assert all(v.dtype == torch.float16 for v in raw["model"].values() if v.is_floating_point())
    model, cfg, norm = load_model(DEFAULT_WEIGHTS)
    image, truth = synthetic_case(seed=11, index=0, shape=(192, 256))
    pred = predict_mask(model, cfg, norm, image, tta=False)
    iou = (pred & truth).sum() / (pred | truth).sum()
    assert pred.shape == truth.shape and iou > 0.5, iou
    assert np.isfinite(iou)


REAL_ARCHIVE = Path(REAL_DATA / "PH2Dataset.tar.xz")


@pytest.mark.slow
@pytest.mark.skipif(not REAL_ARCHIVE.is_file(), reason=f"real PH2 archive not at {REAL_ARCHIVE}")
def test_shipped_weights_on_real_ph2_test_images(tmp_path):
    """``predict`` with the shipped weights on 5 PH2 test-split images at full resolution
    (768 x 560 BMPs): the masks match the experts' (mean IoU > 0.8; the README reports 0.91)."""
    from seglib.data import fetch
    from seglib.data.ph2 import split_indices
    from seglib.infer.options import InferenceOptions
    from seglib.infer.predict import DEFAULT_WEIGHTS, predict_files

    images_dir = fetch.find_images_dir(fetch.extract_cached(REAL_ARCHIVE))
    cases = sorted(p for p in images_dir.iterdir() if fetch.is_case_dir(p))
    test = [cases[i] for i in split_indices(len(cases), seed=0)[2][:5]]
    paths = [c / f"{c.name}_Dermoscopic_Image" / f"{c.name}.bmp" for c in test]
    predict_files(DEFAULT_WEIGHTS, paths, tmp_path, InferenceOptions(tta=False))
    ious = []
    for c in test:
        with Image.open(c / f"{c.name}_lesion" / f"{c.name}_lesion.bmp") as im:
            truth = np.asarray(im.convert("L")) > 0
        with Image.open(tmp_path / f"{c.name}_mask.png") as im:
            pred = np.asarray(im) > 127
        assert pred.shape == truth.shape
        ious.append((pred & truth).sum() / (pred | truth).sum())
    assert np.mean(ious) > 0.8, ious
