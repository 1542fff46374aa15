"""The command line, as a user runs it: ``python -m seglib ...`` in a subprocess from the repo
root, one torch thread, a temporary ``SEGLIB_CACHE``. Bad input exits 2 with one ``error:``
line on stderr and no traceback."""

import argparse
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglib import store
from seglib.cli import main
from seglib.data.ph2 import load_ph2
from seglib.data.synth import synthetic_case
from seglib.engine import grid

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parent.parent


def seglib_cli(*args, cache: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", SEGLIB_CACHE=str(cache))
    env.pop("CI", None)
    return subprocess.run(
        [sys.executable, "-m", "seglib", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line_error(done: subprocess.CompletedProcess, *fragments: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0]


# Each command's help names the command and a few of its own options (written out here).
HELP = {
    "main": ([], ["run", "evaluate", "report", "predict", "score", "export", "synth",
                  "robustness", "bench"]),
    "run": (["run"], ["--preset", "--nets", "--losses", "--seeds", "--jobs", "--augment",
                      "--encoder-lr-scale"]),
    "evaluate": (["evaluate"], ["results", "--no-tta", "--threads"]),
    "report": (["report"], ["results", "--diag", "--readme"]),
    "predict": (["predict"], ["--weights", "--out", "--precision", "--overlay", "--pipeline"]),
    "score": (["score"], ["--data", "--out", "--split", "--worst", "--overlays", "--masks",
                          "--precision", "--no-tta", "--pipeline"]),
    "export": (["export"], ["results", "--dest", "--pipeline"]),
    "synth": (["synth"], ["root", "--layout", "--n", "--seed"]),
    "prepare": (["prepare"], ["source", "dest", "--size"]),
    "robustness": (["robustness"], ["weights", "--data", "--split", "--kinds", "--card"]),
    "bench": (["bench"], ["--nets", "--sections", "--repeats"]),
}  # fmt: skip


@pytest.mark.parametrize("name", list(HELP))
def test_help(name, tmp_path):
    cmd, words = HELP[name]
    done = seglib_cli(*cmd, "--help", cache=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not done.stderr
    usage = "usage: python -m seglib" + (f" {cmd[0]}" if cmd and cmd[0] != "bench" else "")
    assert done.stdout.startswith(usage if name != "bench" else "usage:"), done.stdout[:80]
    for word in words:
        assert word in done.stdout, f"{name} --help lacks {word}"


def test_version_is_printed_from_its_one_place(tmp_path):
    """``--version`` prints the package's version; pyproject.toml holds no copy of it but reads
    it from seglib/__init__.py (hatch), so the wheel's metadata carries the same one."""
    import seglib

    tomllib = pytest.importorskip("tomllib")
    done = seglib_cli("--version", cache=tmp_path)
    assert done.returncode == 0 and done.stdout == f"seglib {seglib.__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+", seglib.__version__)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["hatch"]["version"] == {"path": "seglib/__init__.py"}


def test_help_is_plain_text_and_every_option_explained():
    from seglib.cli import parser

    p = parser()
    assert "`" not in p.description and "``" not in p.format_help()
    (sub,) = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    for name, sp in sub.choices.items():
        for action in sp._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help, f"{name} {action.option_strings or action.dest}"
                assert "`" not in action.help, f"{name} {action.dest}"


def test_run_help_names_every_net():
    from seglib.cli import parser
    from seglib.models import NAMES

    (sub,) = [a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)]
    (nets,) = [a for a in sub.choices["run"]._actions if "--nets" in a.option_strings]
    assert set(nets.help.split()[3].split(",")) == set(NAMES), nets.help


def test_no_command_is_a_usage_error(tmp_path):
    done = seglib_cli(cache=tmp_path)
    assert done.returncode == 2 and "usage:" in done.stderr


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--nets", "unet,fcn"], ["unknown net 'fcn'", "segnet, unet, unet2"]),
        (["--losses", "bce,iou"], ["unknown loss 'iou'", "correlation"]),
        (["--data", "{tmp}/no-such-ph2"], ["no-such-ph2", "no such file or folder"]),
        (["--size", "100"], ["--size 100", "2**depth = 8"]),  # smoke: depth 3
    ],
    ids=["unknown-net", "unknown-loss", "bad-data-path", "bad-size"],
)
def test_run_bad_input_exits_2(args, fragments, tmp_path):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    out = tmp_path / "out"
    done = seglib_cli("run", *args, "--out", out, "--quiet", "--no-report", cache=tmp_path)
    assert_one_line_error(done, *fragments)
    assert not out.exists()  # refused before anything was written


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (["run", "--preset", "gpu"], ["unknown preset 'gpu'", "smoke"]),
        (["report", "{tmp}/no-results"], ["no-results", "no such results folder"]),
        (["predict", "--weights", "{tmp}/none.pt", "x.png"], ["none.pt", "no such checkpoint"]),
        (["evaluate", "{tmp}/no-results"], ["no-results", "no finished run with a best.pt"]),
    ],
    ids=["unknown-preset", "report-missing-folder", "predict-missing-weights", "evaluate-empty"],
)
def test_other_bad_input_returns_2(argv, fragments, tmp_path, capsys, monkeypatch):
    """The same error path, in process (cheap: no torch import per case)."""
    monkeypatch.setenv("SEGLIB_CACHE", str(tmp_path))
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if argv[0] == "run":
        argv += ["--out", str(tmp_path / "out"), "--no-report"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in err[0]


def test_run_flags_reach_the_saved_config(smoke_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("SEGLIB_CACHE", str(smoke_cache))
    out = tmp_path / "out"
    argv = ["run", "--nets", "unet", "--losses", "dice", "--epochs", "1", "--lr", "0.01"]
    argv += ["--weight-decay", "0", "--width", "4", "--out", str(out), "--quiet", "--no-report"]
    assert main(argv) == 0
    cfg = store.read_json(out / "unet_dice_s0" / "config.json")
    assert (cfg["epochs"], cfg["lr"], cfg["weight_decay"], cfg["width"]) == (1, 0.01, 0.0, 4)
    assert (cfg["preset"], cfg["size"], cfg["batch_size"]) == ("smoke", 64, 16)  # the rest: smoke


def test_synth_writes_n_cases(tmp_path):
    done = seglib_cli("synth", tmp_path / "ds", "--n", "4", "--seed", "3", cache=tmp_path)
    assert done.returncode == 0, done.stderr
    top = tmp_path / "ds" / "PH2Dataset"
    assert done.stdout.strip() == str(top)
    images_dir = top / "PH2 Dataset images"
    cases = sorted(p.name for p in images_dir.iterdir() if p.is_dir())
    assert cases == ["IMD001", "IMD002", "IMD003", "IMD004"]
    for i, name in enumerate(cases):
        image, truth = synthetic_case(seed=3, index=i, shape=(192, 256))
        with Image.open(images_dir / name / f"{name}_Dermoscopic_Image" / f"{name}.bmp") as im:
            assert np.array_equal(np.asarray(im.convert("RGB")), image)
        with Image.open(images_dir / name / f"{name}_lesion" / f"{name}_lesion.bmp") as im:
            assert np.array_equal(np.asarray(im.convert("L")) > 0, truth)
    data = load_ph2(top, size=32, cache=False)
    assert data.names == cases and data.images.shape == (4, 3, 32, 32)


@pytest.fixture
def tiny_results(smoke_cache, tmp_path, monkeypatch):
    """A finished grid of 2 runs (UNet x BCE, Dice; 1 epoch) trained in process."""
    monkeypatch.setenv("SEGLIB_CACHE", str(smoke_cache))
    out = tmp_path / "results"
    cfgs = grid.configs("smoke", nets=("unet",), losses_=("bce", "dice"), epochs=1)
    grid.run_grid(cfgs, out, grid.GridOptions(device="cpu", quiet=True))
    return out


def test_report_writes_figures_and_markdown(tiny_results, smoke_cache, tmp_path):
    diag = tmp_path / "diag"
    done = seglib_cli("report", tiny_results, "--diag", diag, cache=smoke_cache)
    assert done.returncode == 0, done.stderr
    md = tiny_results / "REPORT.md"
    text = md.read_text()
    assert text.startswith("# Results") and text.strip() in done.stdout
    for name in ("unet_bce_s0", "unet_dice_s0"):
        test = store.read_json(tiny_results / name / "test.json")
        row = next(line for line in text.splitlines() if line.startswith("| UNet |"))
        assert f"{test['score']:.3f}" in row
        assert f"{test['iou']:.3f}" in text and f"{test['dice']:.3f}" in text
    expected = {
        "unet_bce_loss.svg",
        "unet_bce_score.svg",
        "unet_dice_loss.svg",
        "unet_dice_score.svg",
        "unet_score.svg",
        "bce_score.svg",
        "dice_score.svg",
        "best_score.svg",
        "predictions_unet.svg",
        "test_intervals.svg",
        "test_iou_per_image.svg",
    }
    written = {p.name for p in diag.iterdir()}
    assert expected <= written
    assert written - expected <= {"unet_bce_loss_subset.svg", "unet_dice_loss_subset.svg"}
    for name in written:
        assert ET.parse(diag / name).getroot().tag.endswith("svg")
    assert f"{len(written)} figures" in done.stdout


def test_run_refuses_a_changed_config(tiny_results, smoke_cache):
    before = {p: p.stat().st_mtime_ns for p in tiny_results.rglob("*") if p.is_file()}
    done = seglib_cli(
        "run",
        *("--preset", "smoke", "--nets", "unet", "--losses", "bce,dice", "--epochs", "2"),
        *("--out", tiny_results, "--quiet", "--no-report"),
        cache=smoke_cache,
    )
    assert_one_line_error(done, str(tiny_results / "unet_bce_s0"), "epochs: saved 1 vs requested 2")
    assert before == {p: p.stat().st_mtime_ns for p in tiny_results.rglob("*") if p.is_file()}


def test_report_defaults_figures_to_results_diag(tiny_results, smoke_cache):
    """Without --diag the figures go beside the results, never into the repo's committed diag/."""
    done = seglib_cli("report", tiny_results, cache=smoke_cache)
    assert done.returncode == 0, done.stderr
    assert (tiny_results / "diag" / "unet_bce_loss.svg").is_file()
    assert f"figures in {tiny_results / 'diag'}" in done.stdout


def test_a_run_on_a_synth_folder_is_reported_as_synthetic(tmp_path, monkeypatch):
    """``synth DIR`` then ``run --data DIR/PH2Dataset``: PH2's layout, but named synthetic in
    the config, the report and the figures, and never set beside the original report."""
    monkeypatch.setenv("SEGLIB_CACHE", str(tmp_path / "cache"))
    assert main(["synth", str(tmp_path / "fake"), "--n", "8"]) == 0
    out = tmp_path / "runs"
    argv = ["run", "--data", str(tmp_path / "fake" / "PH2Dataset"), "--nets", "unet"]
    argv += ["--losses", "bce", "--epochs", "1", "--size", "32", "--width", "4", "--device", "cpu"]
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    syn = "synthetic PH2-like data"
    assert store.read_json(out / "unet_bce_s0" / "config.json")["datasets"][0]["name"] == syn
    text = (out / "REPORT.md").read_text()
    assert text.startswith(f"# Results on {syn}\n")
    assert f"These runs are on {syn}, not PH2: no comparison with the original report" in text
    for compared in ("ORIGINAL", "Compared with the original", "the original found", "original's"):
        assert compared not in text
    svg = (out / "diag" / "predictions_unet.svg").read_text()
    assert "IMD00" in svg and "(synthetic)" in svg and f"data: {syn}" in svg
    assert f"data: {syn}" in (out / "diag" / "unet_bce_score.svg").read_text()


def test_run_writes_to_runs_preset_by_default(smoke_cache, tmp_path, monkeypatch):
    """Without --out, run writes to runs/<preset> (the README's and the notebook's path)."""
    monkeypatch.setenv("SEGLIB_CACHE", str(smoke_cache))
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--nets", "unet", "--losses", "bce", "--epochs", "1", "--width", "4"]
    assert main([*argv, "--size", "32", "--quiet", "--no-report", "--device", "cpu"]) == 0
    assert (tmp_path / "runs" / "smoke" / "unet_bce_s0" / "test.json").is_file()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["smoke"]
