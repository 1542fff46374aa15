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
    from seglib.data.synth import make_synthetic_ph2

    return make_synthetic_ph2(tmp_path_factory.mktemp("synth"), n=6, seed=1, shape=(48, 64))


@pytest.fixture
def one_thread(monkeypatch):
    """Run the test with one torch thread (the dev machines have 2 busy cores), then restore.

    ``OMP_NUM_THREADS=1`` too, so that a grid run in the test asks for one thread whatever the
    machine's load (:func:`seglib.environ.machine_threads`)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def smoke_cache(tmp_path_factory):
    """A seglib cache folder (for env SEGLIB_CACHE) that already holds the synthetic dataset that
    ``resolve_data("synthetic", ...)`` writes (200 cases, seed 0), shared by the engine and CLI
    tests so it is generated once. Tests may add to it (tensor caches); never delete from it."""
    from seglib.data.synth import make_synthetic_ph2

    path = tmp_path_factory.mktemp("seglib-cache")
    make_synthetic_ph2(path / "synthetic", n=200, seed=0)
    return path


@pytest.fixture(scope="session")
def tiny_data(synth_tree):
    """(data, split, root): the 6-case synthetic tree at 32 px, split 4/1/1, for runs of a few
    seconds (configs from ``tinyrun.tiny_config``)."""
    from seglib.data.ph2 import load_ph2

    data = load_ph2(synth_tree, size=32, cache=False, progress=False)
    return data, ([0, 1, 2, 3], [4], [5]), synth_tree
