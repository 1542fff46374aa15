"""CPU threads for processes seglib owns (the CLI, grid workers); imports no torch.

Two torch processes sharing 2 cores, each with OpenMP threads that spin while idle, slowed each
other 6-12x (benchmarks/README.md); sleeping threads (``OMP_WAIT_POLICY=PASSIVE``) and one thread per
job when the grid runs jobs side by side remove most of that. What is left is oversubscription:
more OpenMP threads than cores. :func:`choose_threads` picks threads so that they fit the cores
that are free (see :mod:`seglib.runtime`). The OpenMP runtime reads its environment once, when
torch starts, so :func:`quiet_openmp` must run before ``import torch``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path


def quiet_openmp() -> None:
    """Idle OpenMP threads sleep instead of spinning (unless the user chose a policy)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass(frozen=True)
class ThreadChoice:
    """Intra-op threads per process, and why (printed in the grid's first line)."""

    threads: int
    reason: str


def choose_threads(
    cores: int, busy: int = 0, jobs: int = 1, requested: int | None = None, source: str = ""
) -> ThreadChoice:
    """Threads for each of ``jobs`` processes side by side (pure function of the machine facts).

    Args:
        cores: cores this process may use. busy: of those, how many other processes keep busy
            (:func:`others_running`). jobs: processes this choice is for (``--jobs``).
        requested: threads asked for (``--threads`` or ``OMP_NUM_THREADS``, named by ``source``):
            always wins.

    The free cores (``cores - busy``) are split evenly, at least one thread each, so that the
    total never exceeds the cores unless ``jobs`` alone does (or every core is busy).
    """
    if requested:
        return ThreadChoice(requested, f"asked for with {source or '--threads'}")
    jobs = max(1, jobs)
    busy = min(max(0, busy), cores)
    per = max(1, (cores - busy) // jobs)
    if busy == 0:
        why = f"all {cores} cores" if jobs == 1 else f"{cores} cores split over {jobs} jobs"
    elif jobs == 1:
        who = "another process is using a core" if busy == 1 else f"others use {busy} cores"
        why = f"{cores} cores, {who}"
    else:
        why = f"{cores} cores, {busy} busy with other processes, the rest split over {jobs} jobs"
    return ThreadChoice(per, why)


def others_running(running: int, cores: int, online: int) -> int:
    """Cores of this process that other runnable tasks keep busy: the kernel's count of runnable
    tasks (``running``, this process included), less this one, scaled to this process's share
    of the ``online`` CPUs (a task elsewhere on a large machine rarely runs on our cores)."""
    others = max(0, running - 1)
    if online > cores:
        others = others * cores // online
    return min(others, cores)


def running_tasks(samples: int = 8, interval: float = 0.005) -> int:
    """Runnable tasks on the machine now, this process included: the least of ``samples``
    readings ``interval`` seconds apart (:func:`running_now`). One reading also counts tasks
    that run for an instant (a shell, a daemon's tick) and made an idle 2-core machine look half
    busy about one time in three; a compute process beside this one is runnable in every one."""
    readings = []
    for i in range(max(1, samples)):
        if i:
            time.sleep(interval)
        readings.append(running_now())
    return min(readings)


def running_now() -> int:
    """One reading of the runnable tasks, this process counted once: the running count of
    ``/proc/loadavg`` (Linux) less this process's own running threads but one
    (:func:`own_running`: its OpenMP threads finishing a parallel region are not another
    process), else the 1-minute load average rounded, else 1."""
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            running = int(f.read().split()[3].split("/")[0])
        return max(1, running - own_running() + 1)
    except (OSError, IndexError, ValueError):
        pass
    try:
        return max(1, round(os.getloadavg()[0]))
    except (OSError, AttributeError):
        return 1


def own_running(tasks: str = "/proc/self/task") -> int:
    """Threads of this process in the running state (``R`` in ``/proc/self/task/*/stat``), at
    least 1 (the caller)."""
    n = 0
    for stat in Path(tasks).glob("*/stat"):
        try:
            n += stat.read_text().rsplit(")", 1)[1].split()[0] == "R"
        except (OSError, IndexError):
            continue
    return max(1, n)


def requested_threads(threads: int | None, environ=os.environ) -> tuple[int | None, str]:
    """(threads asked for, by what): ``--threads``, else a positive ``OMP_NUM_THREADS``."""
    if threads:
        return threads, "--threads"
    text = environ.get("OMP_NUM_THREADS", "").strip()
    if text.isdigit() and int(text) > 0:
        return int(text), "OMP_NUM_THREADS"
    return None, ""


def machine_threads(jobs: int = 1, threads: int | None = None) -> ThreadChoice:
    """:func:`choose_threads` on this machine now: its cores, the other processes running on
    them, and ``threads`` or ``OMP_NUM_THREADS`` when given."""
    n = cores()
    requested, source = requested_threads(threads)
    busy = 0 if requested else others_running(running_tasks(), n, os.cpu_count() or n)
    return choose_threads(n, busy, jobs, requested, source)


def threads_per_job(jobs: int, threads: int | None = None, n_cores: int | None = None) -> int:
    """Intra-op threads for each of ``jobs`` runs side by side on an otherwise idle machine:
    ``threads`` when given, else the cores split evenly (at least one each)."""
    return choose_threads(n_cores or cores(), 0, jobs, threads).threads


def progress_disabled(progress: bool | None = None) -> bool | None:
    """tqdm's ``disable``: forced by ``progress``; else off under env ``CI``; else tqdm decides
    (None: off when not a terminal, on in notebooks)."""
    if progress is not None:
        return not progress
    return True if os.environ.get("CI") else None
