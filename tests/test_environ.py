"""The thread choice as pure functions of the machine facts (cores, other busy processes, jobs,
threads asked for), with hand-worked expected values, and the same choice read from this
machine with its facts mocked."""

from __future__ import annotations

import pytest

from seglib import environ
from seglib.environ import choose_threads, others_running, requested_threads


@pytest.mark.parametrize(
    "cores, busy, jobs, requested, want, why",
    [
        (2, 0, 1, None, 2, "all 2 cores"),  # alone on the machine: every core
        (2, 1, 1, None, 1, "2 cores, another process is using a core"),
        (2, 2, 1, None, 1, "2 cores, others use 2 cores"),  # every core busy: still one
        (2, 5, 1, None, 1, "2 cores, others use 2 cores"),  # busy past the cores: clipped
        (2, 0, 2, None, 1, "2 cores split over 2 jobs"),  # --jobs 2 on 2 cores
        (2, 0, 3, None, 1, "2 cores split over 3 jobs"),  # more jobs than cores: one each
        (8, 0, 3, None, 2, "8 cores split over 3 jobs"),  # 8 // 3
        (8, 2, 2, None, 3, "8 cores, 2 busy with other processes, the rest split over 2 jobs"),
        (16, 0, 1, None, 16, "all 16 cores"),
        (2, 1, 1, 2, 2, "asked for with --threads"),  # asked for: wins over a busy core
        (2, 0, 2, 2, 2, "asked for with --threads"),  # ... and over --jobs
    ],
)
def test_choose_threads(cores, busy, jobs, requested, want, why):
    assert choose_threads(cores, busy, jobs, requested) == environ.ThreadChoice(want, why)


def test_choose_threads_names_what_asked():
    got = choose_threads(2, 0, 1, 1, "OMP_NUM_THREADS")
    assert got == environ.ThreadChoice(1, "asked for with OMP_NUM_THREADS")


@pytest.mark.parametrize(
    "running, cores, online, want",
    [
        (1, 2, 2, 0),  # only this process runs
        (2, 2, 2, 1),  # one other task
        (3, 2, 2, 2),  # another 2-thread process
        (7, 2, 2, 2),  # clipped to the cores
        (0, 2, 2, 0),  # a count that missed this process
        (17, 2, 16, 2),  # 16 others on 16 CPUs: 16 * 2 / 16 land on our 2 cores
        (9, 2, 16, 1),  # 8 * 2 // 16
        (5, 2, 16, 0),  # 4 * 2 // 16: elsewhere on a large machine
    ],
)
def test_others_running(running, cores, online, want):
    assert others_running(running, cores, online) == want


@pytest.mark.parametrize(
    "threads, env, want",
    [
        (None, {}, (None, "")),
        (None, {"OMP_NUM_THREADS": "1"}, (1, "OMP_NUM_THREADS")),
        (2, {"OMP_NUM_THREADS": "1"}, (2, "--threads")),  # the option wins over the variable
        (None, {"OMP_NUM_THREADS": "0"}, (None, "")),
        (None, {"OMP_NUM_THREADS": "4,2"}, (None, "")),  # nested lists: not a count
    ],
)
def test_requested_threads(threads, env, want):
    assert requested_threads(threads, env) == want


@pytest.fixture
def two_cores(monkeypatch):
    """This machine as 2 cores of 2 online CPUs, with OMP_NUM_THREADS unset; returns a setter
    for the kernel's running count."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(environ, "cores", lambda: 2)
    monkeypatch.setattr(environ.os, "cpu_count", lambda: 2)
    return lambda n: monkeypatch.setattr(environ, "running_tasks", lambda: n)


def test_machine_threads_reads_the_running_count(two_cores, monkeypatch):
    two_cores(1)  # alone
    assert environ.machine_threads() == environ.ThreadChoice(2, "all 2 cores")
    two_cores(2)  # another process runs
    assert environ.machine_threads().threads == 1
    assert environ.machine_threads(jobs=2).threads == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert environ.machine_threads() == environ.ThreadChoice(2, "asked for with OMP_NUM_THREADS")
    assert environ.machine_threads(threads=1).threads == 1


def test_running_tasks_reads_proc_loadavg(monkeypatch, tmp_path):
    fake = tmp_path / "loadavg"
    fake.write_text("1.35 1.38 1.43 3/116 8849\n")
    real_open = open
    monkeypatch.setattr(
        "builtins.open",
        lambda p, *a, **k: real_open(fake if p == "/proc/loadavg" else p, *a, **k),
    )
    monkeypatch.setattr(environ, "own_running", lambda: 1)
    assert environ.running_tasks(samples=1) == 3
    monkeypatch.setattr(environ, "own_running", lambda: 2)  # one of ours finishing its work
    assert environ.running_now() == 2


def test_own_running_counts_this_process_threads_in_state_r(tmp_path):
    for tid, state in [("11", "R"), ("12", "S"), ("13", "R"), ("14", "D")]:
        (tmp_path / tid).mkdir()
        (tmp_path / tid / "stat").write_text(f"{tid} (python (x)) {state} 1 2 3\n")
    assert environ.own_running(str(tmp_path)) == 2
    assert environ.own_running(str(tmp_path / "none")) == 1
    assert environ.own_running() >= 1  # this process, read for real


def test_running_tasks_is_the_least_of_its_readings(monkeypatch):
    """A task that runs for an instant shows in one reading, a compute process in every one."""
    readings = iter([2, 1, 3, 2])
    monkeypatch.setattr(environ, "running_now", lambda: next(readings))
    assert environ.running_tasks(samples=4, interval=0) == 1
    readings = iter([2, 2, 3])
    assert environ.running_tasks(samples=3, interval=0) == 2
