"""A run folder holds one dataset: other data into a finished folder is refused, the same data
from another path is not, and folders written before the data's identity was recorded load."""

import dataclasses
import shutil

import pytest
from helpers import tiny_config

from seglib import store
from seglib.data.synth import make_synthetic_ph2
from seglib.engine import grid

pytestmark = pytest.mark.usefixtures("one_thread")


def files(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def finished(tmp_path, cache):
    """A finished one-run grid on synthetic tree A, and tree B: the same case names
    (IMD001-IMD006), other pixels."""
    a = make_synthetic_ph2(tmp_path / "a", n=6, seed=1, shape=(48, 64))
    b = make_synthetic_ph2(tmp_path / "b", n=6, seed=2, shape=(48, 64))
    cfg = tiny_config(a, epochs=1)
    out = tmp_path / "out"
    grid.run_grid([cfg], out, grid.GridOptions(device="cpu", quiet=True))
    return out, cfg, a, b


def test_other_data_into_a_finished_folder_is_refused(finished):
    out, cfg, _, b = finished
    saved = store.read_json(out / "unet_bce_s0" / "config.json")["data_identity"]
    assert saved["name"] == "synthetic PH2-like data" and len(saved["fingerprint"]) == 16
    before = files(out)
    with pytest.raises(grid.ConfigMismatch) as e:
        grid.run_grid(
            [dataclasses.replace(cfg, data=str(b))], out, grid.GridOptions(device="cpu", quiet=True)
        )
    msg = str(e.value)
    assert str(out / "unet_bce_s0") in msg and "holds a run on other data" in msg
    assert saved["fingerprint"] in msg and f"--data {b}" in msg
    assert "use another --out for this data" in msg
    assert files(out) == before


def test_the_same_data_from_another_path_is_skipped(finished, tmp_path, capsys):
    out, cfg, a, _ = finished
    copy = tmp_path / "moved"
    shutil.copytree(a, copy)
    grid.run_grid(
        [dataclasses.replace(cfg, data=str(copy))], out, grid.GridOptions(device="cpu", quiet=True)
    )
    assert "1 finished (skipped)" in capsys.readouterr().out


def test_a_folder_without_the_data_identity_is_accepted_unread(finished, monkeypatch, capsys):
    """Written before seglib recorded the data: accepted, and the data is not even loaded."""
    out, cfg, _, b = finished
    path = out / "unet_bce_s0" / "config.json"
    saved = store.read_json(path)
    del saved["data_identity"]
    store.write_json(path, saved)

    def no_loading(*a, **k):
        raise AssertionError("data loaded with nothing to compare")

    monkeypatch.setattr(grid, "resolve_data", no_loading)
    grid.run_grid(
        [dataclasses.replace(cfg, data=str(b))], out, grid.GridOptions(device="cpu", quiet=True)
    )
    assert "1 finished (skipped)" in capsys.readouterr().out
