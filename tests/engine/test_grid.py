"""The training engine and the grid end to end: the smoke grid's results store,
resuming without recomputation (also after ``kill -9``), refusing a mismatched config,
prediction with a trained checkpoint, and CPU determinism.

Everything runs on CPU with one torch thread; synthetic data comes from a shared temporary
``SEGLIB_CACHE`` (see ``smoke_cache`` in conftest.py).
"""

import dataclasses
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from seglib import models, store
from seglib.data.ph2 import SYNTHETIC, load_ph2, split_indices
from seglib.data.synth import synthetic_case
from seglib.engine import checkpoint, grid

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[2]
HISTORY_KEYS = {
    "epoch",
    "train_loss",
    "train_iou",
    "val_loss",
    "val_iou",
    "val_dice",
    "val_score",
    "lr",
    "seconds",
}
SMOKE_EPOCHS, N_TEST = 4, 50
CELLS = {("segnet", "dice"), ("unet", "bce"), ("unet2", "focal"), ("effunet", "correlation")}
"""The smoke-grid cells the tests train: each net and each loss once, unet_bce among them."""


@pytest.fixture
def env_cache(smoke_cache, monkeypatch):
    monkeypatch.setenv("SEGLIB_CACHE", str(smoke_cache))
    return smoke_cache


@pytest.fixture(scope="module")
def smoke_grid(smoke_cache, tmp_path_factory):
    """Four cells of the smoke grid (synthetic n=200, 4 epochs), every net and every loss once
    (:data:`CELLS`), trained once in fp32 (the reference computations below are fp32)."""
    out = tmp_path_factory.mktemp("smoke-grid")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SEGLIB_CACHE", str(smoke_cache))
            cfgs = [c for c in grid.configs("smoke") if (c.net, c.loss) in CELLS]
            results = grid.run_grid(
                cfgs, out, grid.GridOptions(device="cpu", quiet=True, precision="fp32", threads=1)
            )
    finally:
        torch.set_num_threads(threads)
    return out, cfgs, results


def course_score(iou: float) -> float:
    """The original ``iou_pytorch`` step, with slack for float32-rounded stored IoUs."""
    return math.ceil(min(max(20 * (iou - 0.5), 0), 10) - 1e-4) / 10


def snapshot(folder: Path) -> dict:
    """{relative path: (bytes, mtime_ns)} of every file under ``folder``."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def without_seconds(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


# --- the smoke grid -------------------------------------------------------------------------


def test_smoke_grid_writes_every_run(smoke_grid):
    out, cfgs, results = smoke_grid
    assert len(grid.configs("smoke")) == 16  # the whole grid: 4 nets x 4 losses
    assert {c.net for c in cfgs} == set(grid.NETS) and {c.loss for c in cfgs} == set(grid.LOSSES)
    names = {f"{n}_{lo}_s0" for n, lo in CELLS}
    assert len(cfgs) == len(results) == 4
    assert {p.name for p in out.iterdir() if p.is_dir()} == names
    _, _, test_idx = split_indices(200, seed=0)
    test_names = [f"IMD{i + 1:03d}" for i in test_idx]
    for cfg, result in zip(cfgs, results):
        run = out / store.run_name(cfg.net, cfg.loss, cfg.seed)
        for f in ("config.json", "history.json", "test.json", "best.pt", "last.pt"):
            assert (run / f).is_file(), f"{run.name}/{f} missing"
        saved = store.read_json(run / "config.json")
        recorded = ("runtime", "datasets", "data_identity")  # what a run adds to its config
        assert {k: v for k, v in saved.items() if k not in recorded} == cfg.to_dict()
        assert [d["test"] for d in saved["datasets"]] == [50]
        assert result["dataset"] == SYNTHETIC == "synthetic PH2-like data"  # never "PH2"
        assert saved["runtime"]["threads"] == 1 and saved["runtime"]["device"] == "cpu"
        assert (cfg.size, cfg.width, cfg.depth, cfg.epochs) == (64, 8, 3, SMOKE_EPOCHS)

        history = store.read_json(run / "history.json")
        assert [row["epoch"] for row in history] == list(range(1, SMOKE_EPOCHS + 1))
        for row in history:
            assert set(row) == HISTORY_KEYS
            assert all(math.isfinite(v) for v in row.values())
            for k in ("train_iou", "val_iou", "val_dice", "val_score"):
                assert 0 <= row[k] <= 1, (run.name, k, row[k])
            assert row["seconds"] > 0 and row["train_loss"] >= 0
        assert history[0]["lr"] == pytest.approx(cfg.lr)  # lr in use during epoch 1

        test = store.read_json(run / "test.json")
        assert test == result
        assert test["names"] == test_names
        iou, dice, score = (
            np.array(test[k]) for k in ("iou_per_image", "dice_per_image", "score_per_image")
        )
        assert iou.shape == dice.shape == score.shape == (N_TEST,)
        for k, per_image in (("iou", iou), ("dice", dice), ("score", score)):
            assert 0 <= test[k] <= 1
            assert ((per_image >= 0) & (per_image <= 1)).all()
            assert test[k] == pytest.approx(per_image.mean(), abs=1e-6)
        # Dice and IoU of the same masks: D = 2J / (1 + J), per image
        np.testing.assert_allclose(dice, 2 * iou / (1 + iou), atol=1e-6)
        np.testing.assert_allclose(score, [course_score(v) for v in iou], atol=1e-6)

        # best.pt is the first epoch with the highest val IoU; params match the net built anew
        best = checkpoint.load_checkpoint(run / "best.pt")
        val_iou = [row["val_iou"] for row in history]
        assert best["epoch"] == test["best_epoch"] == 1 + int(np.argmax(val_iou))
        assert best["config"] == cfg.to_dict()
        net = models.build(cfg.net, width=cfg.width, depth=cfg.depth)
        assert test["params"] == sum(p.numel() for p in net.parameters())
        net.load_state_dict(best["model"])  # same architecture, same keys
        assert test["train_seconds"] == pytest.approx(sum(row["seconds"] for row in history))


def tta_reference(net, x):
    """Mean logits over the 8 rotations/reflections, built from torch.rot90 and flip."""
    outs = []
    for flip in (False, True):
        for r in range(4):
            xi = torch.rot90(x.flip(-1) if flip else x, r, dims=(-2, -1))
            yi = torch.rot90(net(xi), -r, dims=(-2, -1))
            outs.append(yi.flip(-1) if flip else yi)
    return torch.stack(outs).mean(0)


def numpy_iou(pred, truth):
    inter, union = (pred & truth).sum((1, 2)), (pred | truth).sum((1, 2))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0), union


def test_test_metrics_recomputed_from_best_checkpoint(smoke_grid, env_cache):
    """Evaluate each run's best.pt on the test split here, with numpy IoU: same values, with
    test-time augmentation for the headline and without it for ``plain``."""
    out, cfgs, _ = smoke_grid
    data = load_ph2(env_cache / "synthetic" / "PH2Dataset", size=64)
    train_idx, _, test_idx = split_indices(len(data), seed=0)
    x_train = data.images[train_idx].double() / 255
    mean, std = x_train.mean(dim=(0, 2, 3)), x_train.std(dim=(0, 2, 3))
    truth = data.masks[test_idx, 0].numpy() > 0
    for cfg in cfgs:
        run = out / store.run_name(cfg.net, cfg.loss, cfg.seed)
        ckpt = checkpoint.load_checkpoint(run / "best.pt")
        norm = ckpt["norm"].double().view(2, 3)
        if cfg.net == "effunet":  # a pretrained encoder gets ImageNet's mean and std
            want = torch.tensor([[0.485, 0.456, 0.406], [0.229, 0.224, 0.225]]).double()
        else:  # the training images' own
            want = torch.stack([mean, std])
        np.testing.assert_allclose(norm, want, atol=1e-5)
        net = models.build(cfg.net, width=cfg.width, depth=cfg.depth)
        net.load_state_dict(ckpt["model"])
        net.eval()
        x = (data.images[test_idx].float() / 255 - ckpt["norm"][0]) / ckpt["norm"][1]
        with torch.no_grad():
            iou, union = numpy_iou(tta_reference(net, x)[:, 0].numpy() > 0, truth)
            plain_iou, _ = numpy_iou(net(x)[:, 0].numpy() > 0, truth)
        test = store.read_json(run / "test.json")
        assert test["tta"] is True
        # seglib evaluates channels_last in batches of 32; another kernel may flip a pixel
        # whose logit is ~0, so allow that on a few images (one pixel's worth of IoU)
        diff = np.abs(np.array(test["iou_per_image"]) - iou)
        assert (diff <= 1e-6).sum() >= N_TEST - 2, run.name
        assert (diff <= 1e-6 + 1 / np.maximum(union, 1)).all(), run.name
        assert test["iou"] == pytest.approx(iou.mean(), abs=1e-3)
        assert test["plain"]["iou"] == pytest.approx(plain_iou.mean(), abs=1e-3)
        assert test["val"]["plain"]["iou"] == pytest.approx(
            max(row["val_iou"] for row in store.read_json(run / "history.json")), abs=1e-6
        )


def test_rerun_returns_results_without_retraining(smoke_grid, env_cache, monkeypatch):
    out, cfgs, results = smoke_grid
    before = snapshot(out)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(grid, "fit", no_training)  # the data is still read: its identity is checked
    again = grid.run_grid(cfgs, out, grid.GridOptions(device="cpu", quiet=True))
    assert again == results
    assert snapshot(out) == before


# --- crash and resume -----------------------------------------------------------------------


def cli_env(cache: Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", SEGLIB_CACHE=str(cache))
    env.pop("CI", None)
    return env


def test_kill_mid_run_then_resume(smoke_cache, env_cache, tmp_path):
    """SIGKILL a run after >= 3 epochs; the rerun keeps every finished epoch as it was (same
    ``seconds``: not recomputed), finishes 1..8 once each, and ends where an uninterrupted run
    of the same config ends."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "seglib", "run", "--preset", "smoke", "--nets", "unet"]
    cmd += ["--losses", "bce", "--epochs", "8", "--out", str(out), "--quiet", "--no-report"]
    history_file = out / "unet_bce_s0" / "history.json"
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=cli_env(smoke_cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 300
        rows = []
        while len(rows) < 3:  # the event: a history with 3 epochs written
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no 3 epochs within 300 s"
            rows = store.read_json(history_file, [])
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGSTOP)  # frozen mid-run, however fast this machine is
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    recorded = store.read_json(history_file)
    assert 3 <= len(recorded) < 8, "killed too late to test a resume"
    assert recorded[: len(rows)] == rows
    assert not (out / "unet_bce_s0" / "test.json").exists()

    done = subprocess.run(
        cmd, cwd=REPO, env=cli_env(smoke_cache), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    final = store.read_json(history_file)
    assert [row["epoch"] for row in final] == list(range(1, 9))
    assert final[: len(recorded)] == recorded  # identical rows, `seconds` included
    resumed = store.read_json(out / "unet_bce_s0" / "test.json")

    # the same config, never interrupted (in this process, also one thread)
    cfgs = grid.configs("smoke", nets=("unet",), losses_=("bce",), epochs=8)
    (whole,) = grid.run_grid(
        cfgs, tmp_path / "whole", grid.GridOptions(device="cpu", quiet=True, threads=1)
    )
    reference = store.read_json(tmp_path / "whole" / "unet_bce_s0" / "history.json")
    assert without_seconds(final) == without_seconds(reference)
    np.testing.assert_allclose(resumed["iou_per_image"], whole["iou_per_image"], atol=1e-6)
    assert resumed["best_epoch"] == whole["best_epoch"]


# --- refusing a mismatched config ----------------------------------------------------------


def test_mismatched_config_is_refused(env_cache, tmp_path):
    out = tmp_path / "out"
    base = {"nets": ("unet",), "losses_": ("bce",), "epochs": 1}
    grid.run_grid(grid.configs("smoke", **base), out, grid.GridOptions(device="cpu", quiet=True))
    run = out / "unet_bce_s0"
    before = snapshot(out)

    with pytest.raises(grid.ConfigMismatch) as e:
        grid.run_grid(
            grid.configs("smoke", **base | {"lr": 1e-3}), out, grid.GridOptions(quiet=True)
        )
    msg = str(e.value)
    assert str(run) in msg and "lr" in msg and "0.003" in msg and "0.001" in msg
    assert "epochs" not in msg

    with pytest.raises(grid.ConfigMismatch, match=r"epochs: saved 1 vs requested 3"):
        grid.run_grid(
            grid.configs("smoke", **base | {"epochs": 3}), out, grid.GridOptions(quiet=True)
        )

    # a grid with one new run and one mismatched run is refused before any work is done
    cfgs = grid.configs("smoke", nets=("unet",), losses_=("dice", "bce"), width=16, epochs=1)
    with pytest.raises(grid.ConfigMismatch, match="width"):
        grid.run_grid(cfgs, out, grid.GridOptions(quiet=True))
    assert not (out / "unet_dice_s0").exists()
    assert snapshot(out) == before

    # a label (data / preset name) is not a mismatch: same run, results returned as they are
    relabelled = grid.configs("smoke", **base)
    relabelled[0].preset = "renamed"
    (result,) = grid.run_grid(relabelled, out, grid.GridOptions(quiet=True))
    assert result == store.read_json(run / "test.json")
    assert snapshot(out) == before


# --- predict --------------------------------------------------------------------------------


def expected_mask(ckpt: dict, image: np.ndarray, tta: bool = True) -> np.ndarray:
    """The documented predict pipeline: resize to the training size (bilinear, antialiased),
    normalise, predict (mean over the 8 symmetries if ``tta``), resize logits back bilinearly,
    threshold at 0."""
    cfg = ckpt["config"]
    net = models.build(cfg["net"], width=cfg["width"], depth=cfg["depth"])
    net.load_state_dict(ckpt["model"])
    net.eval()
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(cfg["size"],) * 2, mode="bilinear", antialias=True)
    with torch.no_grad():
        x = (x - ckpt["norm"][0]) / ckpt["norm"][1]
        logits = tta_reference(net, x) if tta else net(x)
    return F.interpolate(logits, size=image.shape[:2], mode="bilinear")[0, 0].numpy() > 0


def test_predict_writes_masks_at_input_resolution(smoke_grid, tmp_path):
    out, _, results = smoke_grid
    # the smoke run with the best test IoU, so that the masks are not trivially empty
    best = max(results, key=lambda r: r["iou"])
    run = next(p for p in out.iterdir() if store.read_json(p / "test.json") == best)
    weights = run / "best.pt"
    inputs = {}
    for name, shape in (("img1.bmp", (100, 150)), ("img2.png", (77, 91))):
        image, truth = synthetic_case(seed=5, index=len(inputs), shape=shape)
        Image.fromarray(image).save(tmp_path / name)
        inputs[name] = (image, truth)
    dest = tmp_path / "masks"
    cmd = [sys.executable, "-m", "seglib", "predict", "--weights", str(weights)]
    cmd += ["--out", str(dest), *(str(tmp_path / n) for n in inputs)]
    done = subprocess.run(
        cmd, cwd=REPO, env=cli_env(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["img1_mask.png", "img2_mask.png"]
    ckpt = checkpoint.load_checkpoint(weights)
    for name, (image, truth) in inputs.items():
        with Image.open(dest / f"{Path(name).stem}_mask.png") as im:
            assert im.size == (image.shape[1], image.shape[0])
            mask = np.asarray(im.convert("L"))
        assert set(np.unique(mask)) <= {0, 255}
        pred = mask == 255
        assert (pred == expected_mask(ckpt, image)).mean() > 0.999
        assert pred.any() and not pred.all()
        # the masks track the lesion (overlap well above chance)
        assert (pred & truth).sum() / (pred | truth).sum() > 0.3
    plain = tmp_path / "plain"
    done = subprocess.run(
        [*cmd[:-2], "--no-tta", "--out", str(plain), str(tmp_path / "img1.bmp")],
        cwd=REPO,
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    with Image.open(plain / "img1_mask.png") as im:
        pred = np.asarray(im.convert("L")) == 255
    assert (pred == expected_mask(ckpt, inputs["img1.bmp"][0], tta=False)).mean() > 0.999


def test_evaluate_retests_runs_with_and_without_tta(smoke_grid, env_cache, tmp_path):
    """`python -m seglib evaluate` rewrites test.json from best.pt: --no-tta gives the plain
    numbers as headline, the default gives back the TTA numbers; the training device is kept."""
    import shutil

    out, cfgs, _ = smoke_grid
    names = [store.run_name(c.net, c.loss, c.seed) for c in cfgs[:2]]
    for name in names:
        shutil.copytree(out / name, tmp_path / "res" / name)
    args = [sys.executable, "-m", "seglib", "evaluate", str(tmp_path / "res"), "--device", "cpu"]
    env = cli_env(env_cache)
    done = subprocess.run(
        [*args, "--no-tta"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    for name in names:
        before, after = (store.read_json(d / name / "test.json") for d in (out, tmp_path / "res"))
        assert after["tta"] is False and after["device"] == before["device"]
        assert after["iou"] == pytest.approx(before["plain"]["iou"], abs=1e-6)
        assert after["plain"] == {k: after[k] for k in ("iou", "dice", "score")}
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for name in names:
        before, after = (store.read_json(d / name / "test.json") for d in (out, tmp_path / "res"))
        assert after["iou_per_image"] == pytest.approx(before["iou_per_image"], abs=1e-6)
        assert after["tta"] is True


# --- determinism ----------------------------------------------------------------------------


def test_cpu_fits_are_deterministic(smoke_grid, env_cache, tmp_path):
    """The same configs (same seed) trained again into another folder: identical histories
    except ``seconds`` and identical test metrics."""
    out, _, _ = smoke_grid
    cfgs = grid.configs("smoke", nets=("unet",), losses_=("bce",))
    again = grid.run_grid(
        cfgs, tmp_path / "again", grid.GridOptions(device="cpu", quiet=True, precision="fp32")
    )
    for cfg, result in zip(cfgs, again):
        name = store.run_name(cfg.net, cfg.loss, cfg.seed)
        first = store.read_json(out / name / "test.json")
        for k in ("iou", "dice", "score", "loss"):
            assert result[k] == pytest.approx(first[k], abs=1e-6), (name, k)
        for k in ("iou_per_image", "dice_per_image", "score_per_image"):
            np.testing.assert_allclose(result[k], first[k], atol=1e-6, err_msg=f"{name} {k}")
        assert result["best_epoch"] == first["best_epoch"]
        assert without_seconds(store.read_json(tmp_path / "again" / name / "history.json")) == (
            without_seconds(store.read_json(out / name / "history.json"))
        )


def test_preset_per_run_weight_decay(monkeypatch):
    """A preset's (net, loss) weight decay reaches only that run; --weight-decay wins."""
    preset = grid.PRESETS["smoke"]
    cells = (("unet", "focal", 0.0), ("segnet", "bce", 0.2))
    custom = dataclasses.replace(preset, weight_decay=1e-3, cell_weight_decay=cells)
    monkeypatch.setitem(grid.PRESETS, "smoke", custom)
    cfgs = grid.configs("smoke", nets=("unet", "segnet"), losses_=("bce", "focal"))
    got = [(c.net, c.loss, c.weight_decay) for c in cfgs]
    assert got == [
        ("unet", "bce", 1e-3),
        ("unet", "focal", 0.0),
        ("segnet", "bce", 0.2),
        ("segnet", "focal", 1e-3),
    ]
    cfgs = grid.configs("smoke", nets=("unet",), losses_=("bce", "focal"), weight_decay=0.5)
    assert [c.weight_decay for c in cfgs] == [0.5, 0.5]


def test_missing_data_is_an_error_even_when_every_run_is_finished(smoke_grid, tmp_path):
    """Every run of the grid is finished, but ``--data`` names nothing: refused, not a silent
    success."""
    out, cfgs, _ = smoke_grid
    missing = [dataclasses.replace(c, data=str(tmp_path / "nowhere.tar.xz")) for c in cfgs]
    with pytest.raises(FileNotFoundError, match=r"nowhere\.tar\.xz: no such file or folder"):
        grid.run_grid(missing, out, grid.GridOptions(device="cpu", quiet=True))


def test_a_synthetic_report_is_not_headed_ph2(smoke_grid, tmp_path):
    from seglib.report import markdown

    out, _, _ = smoke_grid
    text = markdown.write_report(out, tmp_path / "REPORT.md")
    assert text.startswith("# Results on synthetic PH2-like data\n")
    assert "Compared with the original report" not in text  # that was on PH2
