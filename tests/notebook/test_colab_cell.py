"""The notebook's first code cell (id ``colab``), run outside and inside a simulated Colab (a
``google.colab`` module; ``subprocess.run`` and IPython's ``%pip`` recorded, not run): it clones
the repository when not inside it, installs it with ``%pip install -q -e .``, and does nothing
else."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
from IPython.core.inputtransformer2 import TransformerManager

ROOT = Path(__file__).resolve().parents[2]
CELL = "".join(
    next(
        c
        for c in json.loads((ROOT / "homework.ipynb").read_text())["cells"]
        if c.get("id") == "colab"
    )["source"]
)
URL = "https://example.org/seglib.git"


@pytest.fixture
def calls(monkeypatch):
    """What the cell runs: ``("run", argv)`` for each subprocess, ``("%pip", line)`` for each
    ``%pip`` line; ``sys.path`` restored after the test."""
    done: list = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: done.append(("run", cmd)))
    monkeypatch.setattr(sys, "path", list(sys.path))
    return done


def run_cell(calls: list, source: str = CELL) -> None:
    """The cell as IPython runs it (its magics turned into ``get_ipython()`` calls)."""
    shell = types.SimpleNamespace(
        run_line_magic=lambda name, line: calls.append((f"%{name}", line))
    )
    python = TransformerManager().transform_cell(source)
    exec(compile(python, "colab_cell.py", "exec"), {"get_ipython": lambda: shell})


@pytest.fixture
def colab(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))


def test_outside_colab_does_nothing(calls, monkeypatch, tmp_path):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.chdir(tmp_path)  # not the repository: inside Colab this would clone
    run_cell(calls)
    assert calls == [] and Path.cwd() == tmp_path


def test_on_colab_inside_the_checkout_only_installs_it(calls, colab, monkeypatch):
    monkeypatch.chdir(ROOT)
    run_cell(calls)
    assert calls == [("%pip", "install -q -e .")] and Path.cwd() == ROOT


def test_on_colab_elsewhere_clones_then_installs_from_the_clone(
    calls, colab, monkeypatch, tmp_path
):
    checkout = tmp_path / "clone"
    monkeypatch.chdir(tmp_path)

    def clone(cmd, **kw):  # a real clone leaves the folder the cell then enters
        calls.append(("run", cmd))
        checkout.mkdir()

    monkeypatch.setattr(subprocess, "run", clone)
    source = CELL.replace("https://github.com/<user>/<repo>.git", URL).replace(
        "/content/seglib-repo", str(checkout)
    )
    run_cell(calls, source)
    assert calls == [
        ("run", ["git", "clone", "-q", "--depth", "1", URL, str(checkout)]),
        ("%pip", "install -q -e ."),
    ]
    assert Path.cwd() == checkout and sys.path[0] == str(checkout)


def test_a_second_run_reuses_the_clone(calls, colab, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clone").mkdir()
    run_cell(calls, CELL.replace("/content/seglib-repo", str(tmp_path / "clone")))
    assert calls == [("%pip", "install -q -e .")] and Path.cwd() == tmp_path / "clone"


def test_placeholder_repo_url_is_refused_before_anything_runs(calls, colab, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="set REPO_URL"):
        run_cell(calls, CELL.replace("/content/seglib-repo", str(tmp_path / "clone")))
    assert calls == [] and Path.cwd() == tmp_path


def test_the_cell_is_short_and_installs_nothing_but_the_checkout():
    code = [
        line for line in CELL.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    assert len(code) <= 15, len(code)
    assert "apt-get" not in CELL and "torch" not in CELL and "os.environ" not in CELL
