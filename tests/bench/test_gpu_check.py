"""benchmarks/gpu_check.py at its tiny CPU scale, so the GPU check cannot rot unnoticed: it runs
end to end with only torch, torchvision, numpy, PIL and seglib importable, prints its ratio
lines, leaves a JSON-only archive, resumes, restores, and stops a run cleanly when out of time.
Not a timing test: no number it measures is checked."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers import REAL_DATA

from benchmarks import gpu_bench, gpu_results

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
RATIO = r"^ratio {}: auto / fp32 = \d+\.\d\dx img/s"

# Run the script as the GPU machine would, but with the packages it must not need made
# unimportable, as if not installed (``sys.modules[name] = None``: ``import`` raises
# ModuleNotFoundError and ``importlib.util.find_spec`` answers None).
BLOCKED_RUN = """
import runpy, sys
for name in ("matplotlib", "scipy", "skimage", "tqdm", "rarfile", "papermill"):
    sys.modules[name] = None
sys.argv = [sys.argv[1], *sys.argv[2:]]
runpy.run_module("benchmarks.gpu_check", run_name="__main__", alter_sys=True)
"""


def _run(tmp_path, out_env: Path, *args) -> str:
    env = os.environ | {
        "OMP_NUM_THREADS": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
        "SEGLIB_CACHE": str(tmp_path / "cache"),
        "OUT": str(out_env),
        "PYTHONPATH": "",
    }
    tiny = ["--tiny"] if torch.cuda.is_available() else []  # else the automatic CPU fallback
    argv = [*tiny, "--nets", "segnet,unet", "--losses", "bce", "--budget-s", "300", *args]
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN, str(SCRIPT), *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_tiny_check_runs_without_optional_packages_and_resumes(tmp_path):
    out1, out2 = tmp_path / "out1", tmp_path / "out2"
    first = _run(tmp_path, out1, "--max-runs", "1")
    for net in ("segnet", "unet"):
        assert re.search(RATIO.format(net), first, re.M), first
    assert "segnet_bce_s0: test IoU" in first and "unet_bce_s0: test IoU" not in first
    archive = out1 / "gpu_check.tar.gz"
    with tarfile.open(archive) as tf:
        members = [m.name for m in tf.getmembers() if m.isfile()]
    assert members and all(n.endswith(".json") for n in members), members
    assert "tiny/gpu_check.json" in members
    assert {"tiny/segnet_bce_s0/" + f for f in ("config.json", "history.json", "test.json")} <= set(
        members
    )
    assert not any(n.startswith("tiny/unet_bce_s0/") for n in members)
    run_dir = tmp_path / "gpu" / "results" / "tiny" / "segnet_bce_s0"
    assert (run_dir / "best.pt").exists()  # checkpoints stay behind, out of the archive

    second = _run(tmp_path, out2)  # same results folder: continues
    assert re.search(r"grid: 2 of 2 runs finished .*\(1 this call, 1 skipped as finished\)", second)
    assert "segnet_bce_s0: test IoU" not in second and "unet_bce_s0: test IoU" in second
    summary = gpu_results.read_member(out2 / "gpu_check.tar.gz", "tiny/gpu_check.json")
    assert len(summary["calls"]) == 2
    assert [r["run"] for r in summary["calls"][1]["runs"]["finished"]] == ["unet_bce_s0"]
    assert summary["calls"][1]["runs"]["skipped"] == ["segnet_bce_s0"]
    if not torch.cuda.is_available():
        assert "no CUDA GPU here: running the tiny CPU fallback" in first


def _fake_results(out: Path) -> None:
    """One finished run (with checkpoints) and one unfinished run, written by hand."""
    for run, finished in (("unet_bce_s0", True), ("unet_dice_s0", False)):
        d = out / run
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps({"net": "unet", "run": run}))
        (d / "history.json").write_text(json.dumps([{"epoch": 1}]))
        (d / "last.pt").write_bytes(b"not json")
        if finished:
            (d / "test.json").write_text(json.dumps({"score": 0.5}))
            (d / "best.pt").write_bytes(b"not json")


def test_archive_holds_json_only_and_restores_finished_runs(tmp_path):
    out = tmp_path / "a" / "course"
    _fake_results(out)
    path = gpu_results.write(out, tmp_path / "x" / "gpu_check.tar.gz", {"n": 1})
    assert sorted(gpu_results.names(path)) == [
        "course/gpu_check.json",
        "course/unet_bce_s0/config.json",
        "course/unet_bce_s0/history.json",
        "course/unet_bce_s0/test.json",
        "course/unet_dice_s0/config.json",
        "course/unet_dice_s0/history.json",
    ]
    fresh = tmp_path / "b" / "course"
    assert gpu_results.restore(path, fresh) == ["unet_bce_s0"]  # the unfinished run is not
    for f in ("config.json", "history.json", "test.json"):
        assert (fresh / "unet_bce_s0" / f).read_bytes() == (out / "unet_bce_s0" / f).read_bytes()
    assert not (fresh / "unet_dice_s0").exists()
    assert json.loads((fresh / "gpu_check.json").read_text()) == {"calls": [{"n": 1}]}
    assert gpu_results.restore(path, fresh) == []  # already there: nothing to do
    assert gpu_results.restore(tmp_path / "missing.tar.gz", fresh) == []
    assert gpu_results.restore(path, tmp_path / "c" / "tiny") == []  # another results folder


def test_restore_reads_only_known_members(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        for name in ("course/../evil.json", "course/unet_bce_s0/../../evil2.json",
                     "course/unet_bce_s0/test.json", "course/unet_bce_s0/run.sh"):  # fmt: skip
            src = tmp_path / "blob"
            src.write_text("{}")
            tf.add(src, arcname=name)
    fresh = tmp_path / "r" / "course"
    assert gpu_results.restore(archive, fresh) == ["unet_bce_s0"]
    assert sorted(p.name for p in (fresh / "unet_bce_s0").iterdir()) == ["test.json"]
    assert not list(tmp_path.rglob("evil*.json"))


def test_estimates_hand_worked():
    per_epoch, img_s = {"unet": 2.0}, {"unet": 100.0, "segnet": 200.0}
    assert gpu_bench.estimate_run_s("unet", 10, per_epoch, img_s, {}) == pytest.approx(20.0)
    # segnet unmeasured: unet's 2 s/epoch x (100 / 200 img/s) x 10 epochs
    assert gpu_bench.estimate_run_s("segnet", 10, per_epoch, img_s, {}) == pytest.approx(10.0)
    # bench only: 10 x 1.5 s + test phase 900 images x 1/3 / 300 img/s = 15 + 1
    est = gpu_bench.estimate_run_s("unet", 10, {}, {"unet": 300.0}, {"unet": 1.5})
    assert est == pytest.approx(16.0)
    assert gpu_bench.estimate_run_s("unet2", 10, {}, {}, {}) is None
    # (100 train + 50 val / 3) / 100 img/s = 7/6 s; a 0.05 s save fits in every epoch
    assert gpu_bench.epoch_s_from_bench(100.0, 0.05, 100, 50) == pytest.approx(7 / 6 + 0.05)
    # a 0.5 s save is written only every few epochs: writing takes 1/10 of the time, 7/6 x 10/9
    assert gpu_bench.epoch_s_from_bench(100.0, 0.5, 100, 50) == pytest.approx(7 / 6 * 10 / 9)


def test_out_of_time_leaves_the_run_resumable(tmp_path, monkeypatch, capsys, one_thread):
    """The hard deadline firing inside ``fit`` (simulated at epoch 2 of 2) stops the run with
    its epoch-1 ``last.pt``; the next call resumes it from there and finishes it."""
    from benchmarks import gpu_check
    from seglib.engine import failures

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEGLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("OUT", raising=False)
    real = failures.check_finite

    def deadline_at_epoch_2(run_dir, epoch, row):
        if epoch == 2:
            raise gpu_check.OutOfTime
        real(run_dir, epoch, row)

    monkeypatch.setattr(failures, "check_finite", deadline_at_epoch_2)
    argv = ["--tiny", "--nets", "unet", "--losses", "bce", "--sections", "grid"]
    argv += ["--budget-s", "1e6"]
    assert gpu_check.main(argv) == 0
    out = capsys.readouterr().out
    assert "stopped unet_bce_s0 at epoch 1/2: out of time" in out, out
    run_dir = tmp_path / "gpu" / "results" / "tiny" / "unet_bce_s0"
    assert (run_dir / "last.pt").exists() and not (run_dir / "test.json").exists()
    names = gpu_results.names(tmp_path / "gpu" / "results" / "gpu_check.tar.gz")
    assert all(n.endswith(".json") for n in names)

    monkeypatch.setattr(failures, "check_finite", real)
    assert gpu_check.main(argv) == 0
    out = capsys.readouterr().out
    assert "run unet_bce_s0: epochs 2-2" in out, out
    assert len(json.loads((run_dir / "history.json").read_text())) == 2
    assert (run_dir / "test.json").exists()


def test_missing_data_says_what_to_copy(tmp_path):
    from benchmarks import gpu_check

    a = SimpleNamespace(tiny=False, data=str(tmp_path / "gpu" / "PH2-256.tar"))
    with pytest.raises(
        FileNotFoundError,
        match=r"seglib prepare PH2Dataset\.tar\.xz gpu/PH2-256\.tar",
    ):
        gpu_check.load(a)


PH2_256 = REAL_DATA / "PH2-256.tar"


@pytest.mark.skipif(not PH2_256.is_file(), reason=f"needs {PH2_256} (seglib prepare)")
def test_ph2_256_tar_loads_at_256(tmp_path, monkeypatch):
    """The archive the GPU check carries loads as PH2 at 256 px; one case compared with its PNG
    files decoded directly (tarfile + PIL, no seglib)."""
    import numpy as np
    from PIL import Image

    from seglib.data.ph2 import load_dataset

    monkeypatch.setenv("SEGLIB_CACHE", str(tmp_path / "cache"))
    data = load_dataset(PH2_256, size=256, progress=False)
    assert data.images.shape == (200, 3, 256, 256) and data.masks.shape == (200, 1, 256, 256)
    assert data.source == "PH2" and data.names[0] == "IMD002" and len(set(data.names)) == 200
    i = data.names.index("IMD002")
    base = "PH2-256/PH2 Dataset images/IMD002/IMD002"
    with tarfile.open(PH2_256) as tf:
        img = np.asarray(Image.open(tf.extractfile(f"{base}_Dermoscopic_Image/IMD002.png")))
        mask = np.asarray(Image.open(tf.extractfile(f"{base}_lesion/IMD002_lesion.png")))
    assert np.array_equal(data.images[i].permute(1, 2, 0).numpy(), img[..., :3])
    assert np.array_equal(data.masks[i, 0].numpy(), (mask > 0).astype(np.uint8))


@pytest.mark.skipif(not PH2_256.is_file(), reason=f"needs {PH2_256} (seglib prepare)")
def test_course_scale_loads_the_carried_archive(tmp_path, monkeypatch):
    """Without --tiny the check trains the course scale of the issue (256 px, width 64, batch
    25, 200 epochs; 3 nets x 4 losses) on the archive it was given."""
    from benchmarks import gpu_check

    monkeypatch.setenv("SEGLIB_CACHE", str(tmp_path / "cache"))
    nets, losses = ["segnet", "unet", "unet2"], ["bce", "dice", "focal", "correlation"]
    a = SimpleNamespace(tiny=False, data=str(PH2_256), nets=nets, losses=losses)
    data, cfgs = gpu_check.load(a)
    assert len(data) == 200 and len(cfgs) == 12
    assert {(c.size, c.width, c.batch_size, c.epochs, c.data) for c in cfgs} == {
        (256, 64, 25, 200, str(PH2_256))
    }
    assert [(c.net, c.loss) for c in cfgs[:5]] == [
        ("segnet", "bce"), ("segnet", "dice"), ("segnet", "focal"), ("segnet", "correlation"),
        ("unet", "bce"),
    ]  # fmt: skip
