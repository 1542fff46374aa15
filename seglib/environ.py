"""CPU threads for processes seglib owns (the CLI, grid workers); imports no torch.

Two torch processes sharing 2 cores, each with OpenMP threads that spin while idle, slowed each
other 6-12x (benchmarks/README.md); sleeping threads (``OMP_WAIT_POLICY=PASSIVE``) and one thread per
job when the grid runs jobs side by side remove most of that. The OpenMP runtime reads its
environment once, when torch starts, so :func:`quiet_openmp` must run before ``import torch``.
"""

from __future__ import annotations

import os


def quiet_openmp() -> None:
    """Idle OpenMP threads sleep instead of spinning (unless the user chose a policy)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def threads_per_job(jobs: int, threads: int | None = None, n_cores: int | None = None) -> int:
    """Intra-op threads for each of ``jobs`` runs side by side: ``threads`` when given, else the
    cores split evenly (at least one each)."""
    if threads:
        return threads
    return max(1, (n_cores or cores()) // max(1, jobs))


def progress_disabled(progress: bool | None = None) -> bool | None:
    """tqdm's ``disable``: forced by ``progress``; else off under env ``CI``; else tqdm decides
    (None: off when not a terminal, on in notebooks)."""
    if progress is not None:
        return not progress
    return True if os.environ.get("CI") else None
