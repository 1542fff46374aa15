"""Root pytest configuration: a small, isolated run of ``homework.ipynb`` under nbval.

``pytest --nbval-lax homework.ipynb`` (part of the default ``python -m pytest``, see pyproject)
executes the notebook in a fresh kernel, which inherits this process's environment. Just before
that kernel starts, the notebook's ``SEGLIB_*`` overrides are set (``setdefault``: variables the
user exported win) so it trains the smoke preset on synthetic data for one epoch, 2 nets x 2
losses x 1 seed = 4 runs, in a temporary folder, never in the repository's ``results/`` or
``diag/``. Every grid parameter is set here on purpose: the committed notebook keeps the
papermill-injected cell of the reference run (3 seeds of the cpu preset on real PH2), which
would otherwise apply (tests/test_notebook.py checks that each of its names is overridden).
The environment is restored right after the kernel started, so the other tests do not see
these variables.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_TMP: list[str] = []


def _nbval_env() -> dict[str, str]:
    if not _TMP:
        _TMP.append(tempfile.mkdtemp(prefix="seglib-nbval-"))
    tmp = _TMP[0]
    return {
        "SEGLIB_PRESET": "smoke",
        "SEGLIB_DATA": "synthetic",
        "SEGLIB_EPOCHS": "1",
        "SEGLIB_SEEDS": "0",  # the committed injected-parameters cell holds the reference's 3
        "SEGLIB_NETS": "segnet,unet2",
        "SEGLIB_LOSSES": "bce,dice",
        "SEGLIB_OUT": os.path.join(tmp, "out"),
        "SEGLIB_DIAG": os.path.join(tmp, "diag"),
        "SEGLIB_CACHE": os.path.join(tmp, "cache"),
        "OMP_NUM_THREADS": "1",
    }


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.timeout(1800))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    """nbval starts the notebook's kernel while setting up its first cell: set the environment
    (defaults only) for that start, then restore it."""
    if item.path.suffix != ".ipynb":
        return (yield)
    saved = dict(os.environ)
    for key, value in _nbval_env().items():
        os.environ.setdefault(key, value)
    try:
        return (yield)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def pytest_unconfigure(config):
    for tmp in _TMP:
        shutil.rmtree(tmp, ignore_errors=True)
