"""The parallel grid: ``--jobs 2`` and ``--executor ray`` give each run the same test
metrics as a sequential grid at the same per-run thread count; a crashing run fails alone with its
traceback saved; Ctrl-C stops every worker and a rerun resumes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seglib import store
from seglib.engine import grid

REPO = Path(__file__).resolve().parents[2]
# Threads per run fixed (not the cores split over --jobs): the same metrics on any machine.
GRID = [
    "--preset",
    "smoke",
    "--nets",
    "unet,segnet",
    "--losses",
    "bce,dice",
    "--threads",
    "1",
    "--epochs",
    "2",
]
KEYS = ("iou", "dice", "score", "iou_per_image", "best_epoch")


def cli(*args, cache, timeout=600, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1", SEGLIB_CACHE=str(cache))
    env.pop("CI", None)
    cmd = [sys.executable, "-m", "seglib", "run", "--no-report", "--quiet", *map(str, args)]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def metrics(out: Path) -> dict:
    tests = {d.name: store.read_json(d / "test.json") for d in Path(out).iterdir() if d.is_dir()}
    return {name: {k: t[k] for k in KEYS} for name, t in tests.items() if t}


@pytest.fixture(scope="module")
def sequential(smoke_cache, tmp_path_factory):
    """The 4-run grid, one run at a time with one thread (the reference for the others)."""
    out = tmp_path_factory.mktemp("seq")
    done = cli(*GRID, "--jobs", "1", "--threads", "1", "--out", out, cache=smoke_cache)
    assert done.returncode == 0, done.stderr
    assert len(metrics(out)) == 4
    return out


def test_jobs_2_gives_the_sequential_metrics(sequential, smoke_cache, tmp_path):
    done = cli(*GRID, "--jobs", "2", "--out", tmp_path, cache=smoke_cache)
    assert done.returncode == 0, done.stderr
    assert "2 at a time" in done.stdout and "1 threads per run" in done.stdout
    assert metrics(tmp_path) == metrics(sequential)
    again = cli(*GRID, "--jobs", "2", "--out", tmp_path, cache=smoke_cache)
    assert "4 finished (skipped), 0 resumed, 0 new" in again.stdout


def test_ray_executor_gives_the_sequential_metrics(sequential, smoke_cache, tmp_path):
    pytest.importorskip("ray")
    args = ["--nets", "unet", "--executor", "ray", "--jobs", "2", "--out", tmp_path]
    done = cli(*GRID, *args, cache=smoke_cache)
    assert done.returncode == 0, done.stderr
    got = metrics(tmp_path)
    assert set(got) == {"unet_bce_s0", "unet_dice_s0"}
    assert got == {k: v for k, v in metrics(sequential).items() if k in got}


def test_a_crashing_run_fails_alone(sequential, smoke_cache, tmp_path):
    """A run whose history.json cannot be written (a folder is in the way) fails with its
    traceback in its folder; the other three finish; exit 2 names the failed run."""
    (tmp_path / "unet_dice_s0" / "history.json").mkdir(parents=True)
    done = cli(*GRID, "--jobs", "2", "--out", tmp_path, cache=smoke_cache)
    assert done.returncode == 2, done.stderr
    assert "error: 1 of 4 runs failed: unet_dice_s0 (IsADirectoryError" in done.stderr
    run = tmp_path / "unet_dice_s0"
    assert "IsADirectoryError" in (run / "error.txt").read_text()
    assert "IsADirectoryError" in store.read_json(run / "failed.json")["reason"]
    want = {k: v for k, v in metrics(sequential).items() if k != "unet_dice_s0"}
    assert metrics(tmp_path) == want


def test_ctrl_c_stops_all_workers_and_a_rerun_resumes(sequential, smoke_cache, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", SEGLIB_CACHE=str(smoke_cache))
    env.pop("CI", None)
    six = [*GRID[:-1], "6"]
    six[six.index("--losses") + 1] = "bce"  # two runs: one per worker
    cmd = [sys.executable, "-m", "seglib", "run", "--no-report", "--quiet", *six]
    cmd += ["--jobs", "2", "--out", str(tmp_path)]
    # a shell's background job (`pytest &`) ignores SIGINT and its children inherit that:
    # give the CLI the default disposition, as a terminal's foreground job has
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not list(tmp_path.glob("*/last.pt")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)  # as Ctrl-C does to the main process
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted; rerun the same command to resume" in err.decode()
    # every worker is gone: nothing in the run folders changes any more
    time.sleep(1.5)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    time.sleep(2.0)
    assert before == {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    assert len(metrics(tmp_path)) < 2
    done = cli(*six, "--jobs", "2", "--out", tmp_path, cache=smoke_cache)
    assert done.returncode == 0, done.stderr
    assert "resumed" in done.stdout and len(metrics(tmp_path)) == 2
    cfgs = grid.configs("smoke", nets=("unet", "segnet"), losses_=("bce",))
    assert all(
        len(store.read_json(tmp_path / f"{c.net}_{c.loss}_s0" / "history.json")) == 6 for c in cfgs
    )


@pytest.mark.parametrize("running", [1, 2])  # alone, and beside another process
def test_jobs_2_on_2_cores_gives_one_thread_per_job(running, synth_tree, cache, tmp_path,
                                                     monkeypatch, capsys):  # fmt: skip
    """``--jobs 2`` on a 2-core machine, no ``--threads`` nor ``OMP_NUM_THREADS``: each worker
    gets 1 thread (what the workers are started with), and the grid's first line says so."""
    from seglib import environ
    from seglib.engine import parallel

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(environ, "cores", lambda: 2)
    monkeypatch.setattr(environ.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(environ, "running_tasks", lambda: running)
    seen = []

    def fake_run_local(tasks, out, jobs, threads, quiet):
        seen.append((jobs, threads))
        return [{"iou": 0.5} for _ in tasks]

    monkeypatch.setattr(parallel, "run_local", fake_run_local)
    cfgs = grid.configs("smoke", nets=("unet",), losses_=("bce", "dice"), data=str(synth_tree))
    grid.run_grid(cfgs, tmp_path, grid.GridOptions(device="cpu", quiet=True, jobs=2))
    assert seen == [(2, 1)]
    first = capsys.readouterr().out.splitlines()[0]
    why = "2 cores split over 2 jobs" if running == 1 else "2 cores, 1 busy with other processes"
    assert "2 at a time" in first and "1 threads per run (2 cores" in first and why in first
