"""The ``grid`` and ``procs`` sections of ``seglib bench``: runs side by side inside one grid
(``--jobs 1`` vs ``--jobs 2``) and two ``seglib run`` processes side by side."""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from seglib.engine import grid
from seglib.engine.options import GridOptions


def section_grid(a, net: str) -> None:
    """A 4-run grid, ``--jobs 1`` vs ``--jobs 2``, alternating; median wall seconds."""
    cfgs = grid.configs(
        "cpu", nets=(net,), losses_=grid.LOSSES, data=a.data, size=a.size,
        width=a.width, epochs=a.grid_epochs, batch_size=a.batch_size,
    )  # fmt: skip
    times: dict[int, list[float]] = {1: [], 2: []}
    threads = torch.get_num_threads()
    print(f"# grid {net}: {len(cfgs)} runs, --jobs 1 vs --jobs 2", flush=True)
    for r in range(a.repeats):
        for jobs in (1, 2) if r % 2 == 0 else (2, 1):
            with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
                t0 = time.perf_counter()
                opts = GridOptions(
                    device=a.device, tta=False, quiet=True, jobs=jobs, threads=a.threads
                )
                grid.run_grid(cfgs, tmp, opts)
                times[jobs].append(time.perf_counter() - t0)
            torch.set_num_threads(threads)  # --jobs 1 may have set it
    t1, t2 = (statistics.median(times[j]) for j in (1, 2))
    print(
        f"grid {net}: {len(cfgs)} runs x {a.grid_epochs} epochs: --jobs 1 {t1:.1f} s, --jobs 2 {t2:.1f} s"
    )
    print(f"ratio grid {net}: jobs 2 / jobs 1 = {t1 / t2:.2f}x runs/s", flush=True)


def _cli_run(a, net: str, out: str, env: dict) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "seglib", "run", "--preset", "cpu", "--nets", net]
    cmd += ["--losses", "bce,dice", "--epochs", str(a.grid_epochs), "--size", str(a.size)]
    cmd += ["--width", str(a.width), "--batch-size", str(a.batch_size), "--data", a.data]
    cmd += ["--out", out, "--no-report", "--quiet", "--no-tta", "--device", a.device]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)


def section_procs(a, net: str) -> None:
    """One 2-run CLI grid alone vs two side by side (each with all cores, as users start them)."""
    policies = ["PASSIVE", "ACTIVE"] if a.variants else ["PASSIVE"]
    print(f"# procs {net}: one seglib run alone, then two side by side", flush=True)
    for policy in policies:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMP_")}
        if policy == "ACTIVE":
            env["OMP_WAIT_POLICY"] = "ACTIVE"
        alone, pair = [], []
        for _ in range(a.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                if _cli_run(a, net, f"{tmp}/a", env).wait():
                    raise RuntimeError("seglib run failed in the benchmark")
                alone.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                procs = [_cli_run(a, net, f"{tmp}/{k}", env) for k in "bc"]
                if any(p.wait() for p in procs):
                    raise RuntimeError("seglib run failed in the benchmark")
                pair.append(time.perf_counter() - t0)
        t1, t2 = statistics.median(alone), statistics.median(pair)
        print(
            f"procs {net} (OMP_WAIT_POLICY={policy}): alone {t1:.1f} s, two side by side {t2:.1f} s"
        )
        label = "" if policy == "PASSIVE" else " spinning"
        print(
            f"ratio procs{label} {net}: side by side / (2 x alone) = {t2 / (2 * t1):.2f}x",
            flush=True,
        )
