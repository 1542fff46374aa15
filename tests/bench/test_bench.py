"""Smoke test of seglib/bench/throughput.py: it runs end to end and prints its table and ratio.
Not a timing test: the numbers depend on the machine and its load."""

from __future__ import annotations

import re

from seglib.bench.throughput import main


def test_bench_runs_end_to_end(synth_tree, cache, capsys):
    argv = ["--nets", "unet", "--size", "32", "--width", "2", "--batch-size", "4"]
    argv += ["--epochs", "1", "--repeats", "2", "--threads", "1", "--device", "cpu"]
    assert main([*argv, "--data", str(synth_tree), "--variants"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^ratio unet: fit / plain = \d+\.\d\dx img/s", out, re.M), out
    for way in ("plain", "fit", "plain+cl", "plain+bf16", "fit+fp32", "fit+aug"):
        assert re.search(rf"^unet\s+{re.escape(way)}\s+\d", out, re.M), out


def test_bench_accepts_leading_double_dash(synth_tree, cache, capsys):
    """``python -m seglib bench -- --nets unet ...`` passes a leading ``--`` through."""
    argv = ["--", "--nets", "unet", "--size", "32", "--width", "2", "--epochs", "1"]
    assert main([*argv, "--repeats", "1", "--threads", "1", "--data", str(synth_tree)]) == 0
    assert "ratio unet:" in capsys.readouterr().out


def test_bench_grid_and_process_sections(synth_tree, cache, capsys):
    """The grid (--jobs 1 vs 2) and side-by-side process sections run and print their ratios."""
    argv = ["--nets", "unet", "--size", "32", "--width", "2", "--batch-size", "4", "--epochs", "1"]
    argv += ["--grid-epochs", "1", "--repeats", "1", "--device", "cpu", "--data", str(synth_tree)]
    assert main([*argv, "--sections", "grid,procs"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^# CPU .+ native bf16: (yes|no)\), device cpu", out, re.M), out
    assert re.search(r"^ratio grid unet: jobs 2 / jobs 1 = \d+\.\d\dx", out, re.M), out
    assert re.search(r"^ratio procs unet: side by side / \(2 x alone\) = \d+\.\d\dx", out, re.M)
    assert "ratio unet: fit / plain" not in out  # the run section was not asked for
