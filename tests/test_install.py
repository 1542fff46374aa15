"""The package installs from its wheel and works from there: ``seglib --help`` and ``seglib
predict`` with the shipped weights, away from the source checkout."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglib.data.synth import synthetic_case

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel built from this checkout, installed (without its dependencies, which this
    environment has) into a fresh target folder: ``(site folder, seglib script)``."""
    tmp = tmp_path_factory.mktemp("install")
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*build, "-w", str(tmp / "dist"), str(REPO)], check=True, timeout=300)
    (wheel,) = (tmp / "dist").glob("seglib-*.whl")
    site = tmp / "site"
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site)]
    subprocess.run([*install, str(wheel)], check=True, timeout=300)
    return site, site / "bin" / "seglib"


def run(installed, *args, cwd):
    site, script = installed
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(script), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def test_installed_script_is_the_cli(installed, tmp_path):
    out = run(installed, "--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    for command in ("run", "report", "predict", "score", "robustness", "bench"):
        assert command in out.stdout


def test_installed_version_is_the_wheels(installed, tmp_path):
    """The wheel is named with the version its seglib prints: the one in seglib/__init__.py."""
    site, _ = installed
    (info,) = site.glob("seglib-*.dist-info")
    out = run(installed, "--version", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"seglib {info.name.removeprefix('seglib-').removesuffix('.dist-info')}\n"
    source = (REPO / "seglib" / "__init__.py").read_text()
    assert out.stdout.split()[1] == re.search(r'__version__ = "([^"]+)"', source)[1]


def test_installed_copy_predicts_with_its_shipped_weights(installed, tmp_path):
    """From a folder outside the checkout, the installed package (not the checkout's) predicts
    a mask at the image's own resolution with the weights the wheel carries."""
    site, _ = installed
    assert (site / "seglib" / "weights" / "best.pt").is_file()
    image, _ = synthetic_case(seed=1, index=0, shape=(90, 120))
    Image.fromarray(image).save(tmp_path / "lesion.png")
    probe = run(installed, "predict", "--out", tmp_path / "masks", tmp_path / "lesion.png",
                cwd=tmp_path)  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    mask = np.asarray(Image.open(tmp_path / "masks" / "lesion_mask.png"))
    assert mask.shape == (90, 120) and set(np.unique(mask)) <= {0, 255}
    where = subprocess.run(
        [sys.executable, "-c", "import seglib, sys; print(seglib.__file__)"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert Path(where.stdout.strip()).is_relative_to(site)
