"""Concurrency and training faults: one process per run folder (a lock file, stale
locks of dead processes taken over), a NaN/inf loss stops its run but not the grid, a corrupt
``last.pt`` restarts the run with a warning instead of a traceback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import read_line, tiny_config

from seglib import models, store
from seglib.cli import main
from seglib.engine import checkpoint, grid
from seglib.engine.failures import FAILED, GridFailed, RunFailed
from seglib.engine.options import FitOptions
from seglib.engine.runlock import LOCK_NAME, RunLock, RunLocked
from seglib.engine.train import fit

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[2]

HOLD = """
import sys, time
from seglib.engine.runlock import RunLock
with RunLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of ``tmp_path/grid/unet_bce_s0``: (Popen, that folder)."""
    run = tmp_path / "grid" / "unet_bce_s0"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert read_line(proc).strip() == "locked"
        yield proc, run
    finally:
        proc.kill()
        proc.wait()


def test_second_process_is_refused_naming_folder_and_holder(holder, tiny_data):
    proc, run = holder
    data, split, root = tiny_data
    with pytest.raises(RunLocked) as err:
        fit(tiny_config(root, epochs=1), data, split, run, FitOptions(quiet=True, tta=False))
    msg = str(err.value)
    assert msg.startswith(f"{run}: in use by process {proc.pid} on {socket.gethostname()}")
    assert str(run / LOCK_NAME) in msg
    assert sorted(p.name for p in run.iterdir()) == [LOCK_NAME]  # nothing written by the loser


def test_cli_run_into_a_locked_folder_exits_2(holder, tiny_data, capsys):
    proc, run = holder
    out = run.parent
    argv = ["run", "--data", str(tiny_data[2]), "--size", "32", "--width", "4", "--epochs", "1"]
    argv += ["--nets", "unet", "--losses", "bce", "--out", str(out), "--quiet", "--no-report"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {out / 'unet_bce_s0'}: in use by")
    assert f"process {proc.pid}" in err[0]


def test_stale_lock_of_a_killed_process_is_taken_over(holder, tiny_data):
    proc, run = holder
    proc.kill()
    proc.wait()  # dead: its lock file stays behind
    assert json.loads((run / LOCK_NAME).read_text())["pid"] == proc.pid
    data, split, root = tiny_data
    result = fit(tiny_config(root, epochs=1), data, split, run, FitOptions(quiet=True, tta=False))
    assert store.read_json(run / "test.json") == result
    assert not (run / LOCK_NAME).exists()  # released when the run ended


def test_lock_is_exclusive_and_released(tmp_path):
    with RunLock(tmp_path / "r"):
        with pytest.raises(RunLocked, match="in use by process"):
            RunLock(tmp_path / "r").acquire()
    with RunLock(tmp_path / "r"):  # free again
        pass
    assert not (tmp_path / "r" / LOCK_NAME).exists()


def test_lock_of_another_host_is_never_broken(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere.example"}))
    with pytest.raises(RunLocked, match="process 1 on elsewhere.example"):
        RunLock(run).acquire()


def test_empty_lock_file_is_young_then_stale(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / LOCK_NAME).touch()  # a process that crashed between create and write
    with pytest.raises(RunLocked, match="a process that is starting"):
        RunLock(run).acquire()
    old = time.time() - 60
    os.utime(run / LOCK_NAME, (old, old))
    with RunLock(run) as lock:
        assert json.loads((run / LOCK_NAME).read_text())["pid"] == lock.info["pid"]


@pytest.fixture
def nan_from_epoch(monkeypatch):
    """``set(k)``: every training loss from epoch ``k`` on is NaN (as an exploding lr gives)."""
    import seglib.engine.train as train

    build, state = train.losses.build, {"epoch": 10**9, "steps": 0, "per_epoch": 1}

    def nan_build(name, **kw):
        fn = build(name, **kw)

        def loss(logits, target):
            value = fn(logits, target)
            if torch.is_grad_enabled():
                state["steps"] += 1
            if state["steps"] > (state["epoch"] - 1) * state["per_epoch"]:
                return value * float("nan")
            return value

        return loss

    monkeypatch.setattr(train.losses, "build", nan_build)
    return lambda k: state.update(epoch=k)


def test_nan_loss_stops_the_run_keeping_the_last_good_checkpoint(
    tiny_data, tmp_path, nan_from_epoch
):
    data, split, root = tiny_data
    nan_from_epoch(3)  # 4 train images, batch 4: one step per epoch
    run = tmp_path / "unet_bce_s0"
    with pytest.raises(RunFailed) as err:
        fit(tiny_config(root, epochs=4), data, split, run, FitOptions(quiet=True, tta=False))
    assert str(err.value).startswith("unet_bce_s0: non-finite loss (train loss nan")
    assert "at epoch 3" in str(err.value) and "epoch 2) is kept" in str(err.value)
    failed = store.read_json(run / FAILED)
    assert failed["epoch"] == 3 and "non-finite loss" in failed["reason"]
    assert checkpoint.load_checkpoint(run / "last.pt", "resume")["epoch"] == 2
    assert [h["epoch"] for h in store.read_json(run / "history.json")] == [1, 2]
    assert checkpoint.load_checkpoint(run / "best.pt")["epoch"] in (1, 2)
    assert not (run / "test.json").exists() and not (run / LOCK_NAME).exists()


def test_grid_goes_on_after_a_failed_run(tiny_data, tmp_path, capsys):
    _, _, root = tiny_data
    cfgs = [tiny_config(root, epochs=1, lr=1e30), tiny_config(root, epochs=1, loss="dice")]
    with pytest.raises(GridFailed) as err:
        grid.run_grid(cfgs, tmp_path, grid.GridOptions(quiet=True, tta=False))
    assert str(err.value).startswith("1 of 2 runs failed: unet_bce_s0 (non-finite loss")
    assert store.read_json(tmp_path / "unet_bce_s0" / FAILED)["epoch"] == 1
    assert store.read_json(tmp_path / "unet_dice_s0" / "test.json")["iou"] >= 0
    assert "warning: unet_bce_s0: non-finite loss" in capsys.readouterr().err


def test_cli_absurd_lr_exits_2_and_reports(tiny_data, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["run", "--data", str(tiny_data[2]), "--size", "32", "--width", "4", "--epochs", "1"]
    argv += ["--nets", "unet", "--losses", "bce", "--lr", "1e30", "--out", str(out), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: 1 of 1 runs failed: unet_bce_s0 (non-finite loss")
    assert "Traceback" not in "\n".join(err)
    assert (out / "REPORT.md").is_file() and (out / "unet_bce_s0" / FAILED).is_file()


def test_failed_json_is_cleared_when_the_run_later_finishes(tiny_data, tmp_path):
    data, split, root = tiny_data
    run = tmp_path / "r"
    store.write_json(run / FAILED, {"epoch": 1, "reason": "non-finite loss"})
    fit(tiny_config(root, epochs=1), data, split, run, FitOptions(quiet=True, tta=False))
    assert not (run / FAILED).exists()


@pytest.mark.parametrize("damage", ["truncate", "zero-bytes", "text", "other-width"])
def test_corrupt_last_pt_restarts_with_a_warning(tiny_data, tmp_path, capsys, damage):
    data, split, root = tiny_data
    run = tmp_path / "r"
    fit(tiny_config(root, epochs=1), data, split, run, FitOptions(quiet=True, tta=False))
    (run / "test.json").unlink()  # make it an unfinished run with a last.pt
    last = run / "last.pt"
    good = last.read_bytes()
    if damage == "truncate":  # a full disk cut the file
        last.write_bytes(good[: len(good) // 3])
    elif damage == "zero-bytes":
        last.write_bytes(b"")
    elif damage == "text":
        last.write_text("not a checkpoint")
    else:  # a last.pt copied from a run of another width
        state = torch.load(last, weights_only=True)
        state["model"] = models.build("unet", width=8, depth=2).state_dict()
        torch.save(state, last)
    capsys.readouterr()
    fit(tiny_config(root, epochs=2), data, split, run, FitOptions(quiet=True, tta=False))
    err = capsys.readouterr().err
    assert f"warning: {last}: " in err and "restarting this run from scratch" in err
    assert (run / "last.pt.bad").is_file()
    assert [h["epoch"] for h in store.read_json(run / "history.json")] == [1, 2]  # anew
    assert checkpoint.load_checkpoint(last, "resume")["epoch"] == 2
