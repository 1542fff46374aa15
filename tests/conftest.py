"""Shared pytest fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh, empty seglib cache folder (env SEGLIB_CACHE) for one test."""
    path = tmp_path / "cache"
    monkeypatch.setenv("SEGLIB_CACHE", str(path))
    return path


@pytest.fixture(scope="session")
def synth_tree(tmp_path_factory):
    """A tiny synthetic PH2 tree (6 cases of 48x64), shared: copy it before changing it.
    Returns the dataset root (the ``PH2Dataset`` folder)."""
    from seglib.synth import make_synthetic_ph2

    return make_synthetic_ph2(tmp_path_factory.mktemp("synth"), n=6, seed=1, shape=(48, 64))
