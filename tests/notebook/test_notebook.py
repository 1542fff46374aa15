"""``homework.ipynb`` end to end: papermill runs it headless on the smoke preset (a 2 x 2 grid,
one epoch, synthetic data) and the executed notebook must show the tables, figures and summary.

(``pytest --nbval-lax homework.ipynb``, configured in pyproject and the root conftest, runs it a
second time with a smaller grid set through the environment.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "homework.ipynb"
NETS = ("segnet", "unet", "unet2", "effunet")
LOSSES = ("bce", "dice", "focal", "correlation")
RUN_NETS, RUN_LOSSES = ("segnet", "unet"), ("bce", "dice")
"""The papermill run's grid: the smallest that still has groups of nets and of losses."""


def _outputs(nb: dict) -> list[dict]:
    return [o for cell in nb["cells"] if cell["cell_type"] == "code" for o in cell["outputs"]]


def _text(out: dict, mime: str) -> str:
    data = out.get("data", {}).get(mime, "")
    return "".join(data) if isinstance(data, list) else data


def test_parameters_cell_is_tagged():
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    tagged = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1
    src = "".join(tagged[0]["source"])
    for name in ("PRESET", "DATA", "NETS", "LOSSES", "SEEDS", "EPOCHS", "OUT", "DIAG", "DEVICE"):
        assert f"{name} = " in src
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


def test_the_parameters_cell_is_the_only_one():
    """No papermill-injected cell is committed: what a user sets in the parameters cell is what
    runs (the environment overrides, used by nbval, apply only when set)."""
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    tags = [t for c in nb["cells"] for t in c["metadata"].get("tags", [])]
    assert "injected-parameters" not in tags and tags.count("parameters") == 1
    assert "papermill" not in nb["metadata"]


def test_nbval_grid_is_small():
    import importlib.util

    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    root_conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(root_conftest)
    env = root_conftest._nbval_env()
    runs = len(env["SEGLIB_NETS"].split(",")) * len(env["SEGLIB_LOSSES"].split(","))
    assert runs * len(env["SEGLIB_SEEDS"].split(",")) == 4 and env["SEGLIB_EPOCHS"] == "1"


def committed_files() -> dict[str, bytes]:
    """Every tracked file's content hash (what Run all must leave alone)."""
    import hashlib
    import subprocess

    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")  # fmt: skip
    return {
        n: hashlib.sha1((ROOT / n).read_bytes()).digest() for n in names if (ROOT / n).is_file()
    }


@pytest.mark.slow
def test_edited_parameters_are_what_runs(tmp_path, monkeypatch):
    """A user edits the parameters cell (smoke, one net and loss, an OUT of their own) and runs
    every cell, as Jupyter's Run all does: the run uses exactly those values, writes under that
    OUT only, and no committed file changes."""
    nbclient = pytest.importorskip("nbclient")
    import nbformat

    for key in list(os.environ):  # no overrides: the cell alone decides
        if key.startswith("SEGLIB_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("SEGLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "mine"
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source = (
        f'PRESET = "smoke"\nDATA = "synthetic"\nNETS = ["unet"]\nLOSSES = ["dice"]\n'
        f'SEEDS = [3]\nEPOCHS = 2\nOUT = "{out}"\nDIAG = None\nDEVICE = "cpu"\n'
        f'PRECISION = "fp32"\nJOBS = 1\n'
    )
    before = committed_files()
    nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}}).execute()  # fmt: skip
    assert committed_files() == before
    assert sorted(p.name for p in out.iterdir()) == ["REPORT.md", "diag", "unet_dice_s3"]
    config = json.loads((out / "unet_dice_s3" / "config.json").read_text())
    assert (config["preset"], config["net"], config["loss"], config["seed"]) == (
        "smoke",
        "unet",
        "dice",
        3,
    )
    assert config["epochs"] == 2 and config["data"] == "synthetic"
    assert config["runtime"]["precision"] == "fp32"
    assert (out / "diag" / "unet_dice_score.svg").is_file()


def test_data_default_follows_the_preset():
    """``DATA = None`` in the parameters cell: the smoke preset then trains on synthetic data
    (offline), the others download PH2."""
    from seglib.engine import grid

    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    assert "\nDATA = None " in "\n" + "".join(cell["source"])
    assert grid.configs("smoke", data=None)[0].data == "synthetic"
    assert grid.configs("cpu", data=None)[0].data == "download"


@pytest.mark.slow
def test_papermill_smoke(tmp_path, monkeypatch):
    papermill = pytest.importorskip("papermill")
    for key in list(os.environ):  # overrides would win over -p (see the notebook)
        if key.startswith("SEGLIB_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("SEGLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out, diag = tmp_path / "out", tmp_path / "diag"
    executed = tmp_path / "executed.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(executed),
        parameters={
            "PRESET": "smoke",
            "OUT": str(out),
            "DIAG": str(diag),
            "DATA": "synthetic",
            "EPOCHS": 1,
            "NETS": list(RUN_NETS),
            "LOSSES": list(RUN_LOSSES),
        },
        kernel_name="python3",
        cwd=str(ROOT),
        progress_bar=False,
    )
    outputs = _outputs(json.loads(executed.read_text(encoding="utf-8")))
    assert not [o for o in outputs if o["output_type"] == "error"]
    markdown = [_text(o, "text/markdown") for o in outputs]
    tables = [m for m in markdown if "| SegNet |" in m and "| BCE |" in m]
    assert len(tables) >= 3  # score, IoU, Dice (+ the comparison, the original's table)
    assert any("**Test course score**" in m for m in tables)
    assert any("### Best (test set" in m and "4 runs (4 finished)" in m for m in markdown)
    assert any("### Per-run details" in m for m in markdown)
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) >= len(RUN_NETS) + len(RUN_LOSSES) + 1 + len(
        RUN_NETS
    )  # groups, best, predictions
    assert any("data:image/png;base64," in _text(o, "text/html") for o in outputs)

    for name in [*RUN_NETS, *RUN_LOSSES, "best"]:
        assert (diag / f"{name}_score.svg").is_file()
    for net in RUN_NETS:
        assert (diag / f"predictions_{net}.svg").is_file()
        for loss in RUN_LOSSES:
            assert (diag / f"{net}_{loss}_loss.svg").is_file()
            assert (diag / f"{net}_{loss}_score.svg").is_file()
            assert (out / f"{net}_{loss}_s0" / "test.json").is_file()
    assert "## Summary" in (out / "REPORT.md").read_text(encoding="utf-8")
