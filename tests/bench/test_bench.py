"""Smoke test of seglib/bench/throughput.py: it runs end to end and prints its table and ratio.
Not a timing test: the numbers depend on the machine and its load."""

from __future__ import annotations

import re

from seglib.bench.throughput import main
from seglib.engine import checkpoint
from seglib.infer.predict import DEFAULT_WEIGHTS
from seglib.runtime import runtime


def test_bench_runs_end_to_end(synth_tree, cache, capsys):
    argv = ["--nets", "unet", "--size", "32", "--width", "2", "--batch-size", "4"]
    argv += ["--epochs", "1", "--repeats", "2", "--threads", "1", "--device", "cpu"]
    argv += ["--sections", "run,grid,procs"]  # predict: its own test below
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


def test_bench_predict_section(tmp_path, capsys):
    """The predict section times today's way and the fast path on the same images, prints a
    row each (img/s, CPU%), and a ratio line saying whether their masks agree (the shipped
    net at a 64 px training size, so that its masks are lesions, not noise)."""
    ckpt = checkpoint.load_checkpoint(DEFAULT_WEIGHTS, "model")
    ckpt["config"] = {**ckpt["config"], "size": 64}
    weights = tmp_path / "w.pt"
    checkpoint.save(weights, ckpt)
    argv = ["--sections", "predict", "--weights", str(weights), "--images", "2"]
    argv += ["--image-size", "150x200", "--repeats", "2", "--threads", "1", "--variants"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(
        r"^# predict: w.pt \(unet width 16, robust pipeline, input sides 64,96\)", out, re.M
    )
    assert re.search(r"^predict today +\d+\.\d\d +\d+%  fp32 +contiguous +1$", out, re.M), out
    assert re.search(r"^predict fast +\d+\.\d\d +\d+%  (fp32|bf16) +channels-last +8$", out, re.M)
    assert re.search(r"^predict fast contiguous +\d", out, re.M), out
    assert re.search(r"^predict fast batch 2 +\d.* channels-last +2$", out, re.M), out
    ratio = r"^ratio predict: fast / today = \d+\.\d\dx img/s \(CPU \d+% vs \d+%; masks "
    same = "2/2" if runtime("cpu").precision == "fp32" else "\\d/2"  # bf16 where native
    assert re.search(ratio + rf"identical on {same} images, min IoU [01]\.\d{{4}}; median of 2\)$",
                     out, re.M), out  # fmt: skip
    if same == "2/2":
        assert "min IoU 1.0000" in out
