"""The notebook's first code cell (id ``colab``), run outside and inside a simulated
Colab (a ``google.colab`` module; ``subprocess.run``, ``shutil.which``, package lookup and the
GPU faked): what it installs, what it refuses, what it hands to the notebook's later cells."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
CELL = "".join(
    next(
        c
        for c in json.loads((ROOT / "homework.ipynb").read_text())["cells"]
        if c.get("id") == "colab"
    )["source"]
)
ENV = ("SEGLIB_PRESET", "SEGLIB_DATA", "SEGLIB_OUT", "SEGLIB_DIAG", "SEGLIB_SEEDS", "SEGLIB_CACHE")


@pytest.fixture(autouse=True)
def restore_environ():
    """The cell writes os.environ (SEGLIB_*, OMP_WAIT_POLICY): never let that leak into later
    tests (the nbval kernel would inherit SEGLIB_DATA=download)."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def colab(monkeypatch):
    """A fake Colab in the repository root: returns the list of commands the cell runs; the
    test sets ``missing`` (import names reported absent), ``tools`` (on PATH) and ``gpu``."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(ROOT)
    state = types.SimpleNamespace(calls=[], missing=set(), tools={"unrar"}, gpu=True)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: state.calls.append(cmd))
    monkeypatch.setattr(shutil, "which", lambda t: f"/usr/bin/{t}" if t in state.tools else None)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda m, *a: None if m in state.missing else real(m, *a)
    )
    monkeypatch.setattr(torch.cuda, "is_available", lambda: state.gpu)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: (7, 5))
    return state


def run_cell(source: str = CELL) -> None:
    exec(compile(source, "colab_cell.py", "exec"), {"__name__": "__main__"})


def test_outside_colab_does_nothing(monkeypatch, tmp_path):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # not the repository: inside Colab this would clone
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    run_cell()
    assert calls == [] and Path.cwd() == tmp_path
    assert not [n for n in ENV if n in os.environ]


def test_on_colab_installs_only_what_is_missing_and_sets_the_run(colab, capsys):
    colab.missing = {"rarfile"}  # what a fresh Colab lacks (googlecolab/backend-info)
    run_cell()
    assert colab.calls == [[sys.executable, "-m", "pip", "install", "-q", "rarfile>=4.1"]]
    assert os.environ["SEGLIB_PRESET"] == "course"
    assert os.environ["SEGLIB_DATA"] == "download"  # the course preset's data
    assert os.environ["SEGLIB_OUT"] == "runs/course"
    assert os.environ["SEGLIB_DIAG"] == "runs/course/diag"
    assert os.environ["SEGLIB_SEEDS"] == "0"
    assert "GPU: Tesla T4 (compute capability 7.5)" in capsys.readouterr().out


def test_on_colab_with_everything_there_installs_nothing(colab):
    run_cell()
    assert colab.calls == []


def test_no_rar_tool_installs_unrar_with_apt(colab, capsys):
    colab.tools = set()
    run_cell()
    assert colab.calls == [
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "unrar"],
    ]
    assert "no unrar" in capsys.readouterr().out  # still absent (faked): says what to do


def test_no_gpu_says_which_runtime_to_choose(colab):
    colab.gpu = False
    with pytest.raises(RuntimeError, match=r"Change runtime type > Hardware accelerator: T4 GPU"):
        run_cell()
    assert colab.calls == []  # nothing installed before the runtime is right


def test_no_gpu_is_fine_for_the_smoke_preset(colab):
    colab.gpu = False
    run_cell(CELL.replace('COLAB_PRESET = "course"', 'COLAB_PRESET = "smoke"'))
    assert os.environ["SEGLIB_PRESET"] == "smoke"
    assert os.environ["SEGLIB_DATA"] == "synthetic"


def test_placeholder_repo_url_is_refused_outside_the_repository(colab, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="set REPO_URL"):
        run_cell()
    assert colab.calls == []


def test_never_installs_torch(colab):
    colab.missing = {"rarfile", "tqdm", "numpy", "PIL", "matplotlib", "scipy", "torchvision"}
    run_cell()
    (pip,) = colab.calls
    assert not any(arg.startswith(("torch", "torchvision")) for arg in pip[5:])
