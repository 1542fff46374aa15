"""Smoke tests of ``seglib bench``: each section runs end to end at a tiny scale and prints its
table and ratio lines; the default (quick) and ``--full`` scales. Not a timing test: the numbers
depend on the machine and its load."""

from __future__ import annotations

import re

from seglib.bench.throughput import FULL, QUICK, main, parse
from seglib.engine import checkpoint
from seglib.infer.predict import DEFAULT_WEIGHTS
from seglib.runtime import runtime


def test_bench_run_section_with_variants(synth_tree, cache, capsys):
    argv = ["--nets", "unet", "--size", "32", "--width", "2", "--batch-size", "4"]
    argv += ["--epochs", "1", "--repeats", "1", "--threads", "1", "--device", "cpu"]
    argv += ["--sections", "run"]  # the others: their own tests below
    assert main([*argv, "--data", str(synth_tree), "--variants"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^ratio unet: fit / plain = \d+\.\d\dx img/s", out, re.M), out
    for way in ("plain", "fit", "plain+cl", "plain+bf16", "fit+fp32", "fit+aug"):
        assert re.search(rf"^unet\s+{re.escape(way)}\s+\d", out, re.M), out


def test_bench_accepts_leading_double_dash(synth_tree, cache, capsys):
    """``python -m seglib bench -- --nets unet ...`` passes a leading ``--`` through."""
    argv = ["--", "--nets", "unet", "--size", "32", "--width", "2", "--epochs", "1"]
    argv += ["--sections", "run", "--batch-size", "4"]
    assert main([*argv, "--repeats", "1", "--threads", "1", "--data", str(synth_tree)]) == 0
    assert "ratio unet:" in capsys.readouterr().out


GRID_ARGV = ["--nets", "unet", "--size", "32", "--width", "2", "--batch-size", "4"]
GRID_ARGV += ["--epochs", "1", "--grid-epochs", "1", "--repeats", "1", "--device", "cpu"]


def test_bench_grid_section(synth_tree, cache, capsys):
    """The grid section (--jobs 1 vs 2) prints its ratio, under the machine's header."""
    assert main([*GRID_ARGV, "--data", str(synth_tree), "--sections", "grid"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^# CPU .+ native bf16: (yes|no)\), device cpu", out, re.M), out
    assert re.search(r"^# grid unet: 4 runs, --jobs 1 vs --jobs 2$", out, re.M), out
    assert re.search(r"^ratio grid unet: jobs 2 / jobs 1 = \d+\.\d\dx", out, re.M), out
    assert "ratio unet: fit / plain" not in out  # the run section was not asked for


def test_bench_process_section(synth_tree, cache, capsys):
    """Two ``seglib run`` processes alone and side by side: the ratio line."""
    assert main([*GRID_ARGV, "--data", str(synth_tree), "--sections", "procs"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^ratio procs unet: side by side / \(2 x alone\) = \d+\.\d\dx", out, re.M)


def test_bench_predict_section(tmp_path, capsys):
    """The predict section times today's way and the fast path on the same images, prints a
    row each (img/s, CPU%), and a ratio line saying whether their masks agree (the shipped
    net at a 64 px training size, so that its masks are lesions, not noise)."""
    ckpt = checkpoint.load_checkpoint(DEFAULT_WEIGHTS, "model")
    ckpt["config"] = {**ckpt["config"], "size": 64, "pipeline": "robust"}
    net, width = ckpt["config"]["net"], ckpt["config"]["width"]
    weights = tmp_path / "w.pt"
    checkpoint.save(weights, ckpt)
    argv = ["--sections", "predict", "--weights", str(weights), "--images", "2"]
    argv += ["--image-size", "150x200", "--repeats", "1", "--threads", "1", "--variants"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(
        rf"^# predict: w.pt \({net} width {width}, robust pipeline, input sides 64,96\)", out, re.M
    )
    assert re.search(r"^predict today +\d+\.\d\d +\d+%  fp32 +contiguous +1$", out, re.M), out
    assert re.search(r"^predict fast +\d+\.\d\d +\d+%  (fp32|bf16) +channels-last +8$", out, re.M)
    assert re.search(r"^predict fast contiguous +\d", out, re.M), out
    assert re.search(r"^predict fast batch 2 +\d.* channels-last +2$", out, re.M), out
    ratio = r"^ratio predict: fast / today = \d+\.\d\dx img/s \(CPU \d+% vs \d+%; masks "
    same = "2/2" if runtime("cpu").precision == "fp32" else "\\d/2"  # bf16 where native
    assert re.search(ratio + rf"identical on {same} images, min IoU [01]\.\d{{4}}; median of 1\)$",
                     out, re.M), out  # fmt: skip
    if same == "2/2":
        assert "min IoU 1.0000" in out


def test_default_scale_is_quick_and_full_is_full():
    """No option: one net at 64 px, one repeat, 2 grid epochs, 2 images, 4 side steps; --full:
    the README's scale; an option given wins over either."""
    a = parse([])
    assert (a.full, a.nets, a.size, a.epochs, a.repeats) == (False, ["unet"], 64, 1, 1)
    assert (a.grid_epochs, a.images, a.side_steps) == (2, 2, 4)
    assert a.sections == ["run", "grid", "procs", "side", "predict"]
    f = parse(["--full"])
    assert (f.nets, f.size, f.epochs, f.repeats) == (["unet", "segnet"], 128, 3, 2)
    assert (f.grid_epochs, f.images, f.side_steps) == (10, 8, 20)
    assert parse(["--full", "--size", "32", "--repeats", "1"]).size == 32
    assert parse(["--full", "--repeats", "1"]).repeats == 1
    assert set(QUICK) == set(FULL)


def test_side_section_prints_its_ratios(capsys):
    """Two worker processes, alone then in pairs, in fp32 (and bf16 where native): a row and a
    ratio line per pair setting."""
    argv = ["--sections", "side", "--nets", "unet", "--size", "16", "--width", "2"]
    assert main([*argv, "--batch-size", "2", "--side-steps", "1", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^# side by side: unet width 2, 16 px, batch 2, 1 training steps", out, re.M)
    assert re.search(r"^side fp32 alone \(\d+ threads\): \d+ ms/img$", out, re.M), out
    for key in ("old", "new", "split"):
        assert re.search(rf"^side fp32 {key} pair \(\d+\+\d+ threads\): \d+ ms/img", out, re.M)
        ratio = rf"^ratio side by side fp32 {key}: pair / \(2 x alone\) = \d+\.\d\dx$"
        assert re.search(ratio, out, re.M), out
