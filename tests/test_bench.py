"""Smoke test of benchmarks/throughput.py: it runs end to end and prints its table and ratio.
Not a timing test: the numbers depend on the machine and its load."""

from __future__ import annotations

import re

from benchmarks.throughput import main


def test_bench_runs_end_to_end(synth_tree, cache, capsys):
    argv = ["--nets", "unet", "--size", "32", "--width", "2", "--batch-size", "4"]
    argv += ["--epochs", "1", "--repeats", "2", "--threads", "1", "--device", "cpu"]
    assert main([*argv, "--data", str(synth_tree), "--variants"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^ratio unet: fit / plain = \d+\.\d\dx img/s", out, re.M), out
    for way in ("plain", "fit", "plain+cl", "plain+bf16", "fit+bf16", "fit+aug"):
        assert re.search(rf"^unet\s+{re.escape(way)}\s+\d", out, re.M), out


def test_bench_accepts_leading_double_dash(synth_tree, cache, capsys):
    """``python -m seglib bench -- --nets unet ...`` passes a leading ``--`` through."""
    argv = ["--", "--nets", "unet", "--size", "32", "--width", "2", "--epochs", "1"]
    assert main([*argv, "--repeats", "1", "--threads", "1", "--data", str(synth_tree)]) == 0
    assert "ratio unet:" in capsys.readouterr().out
