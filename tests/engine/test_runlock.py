"""Taking over a stale run lock: when several processes find the same dead holder at once,
exactly one of them gets the run folder."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import read_line

from seglib.engine.runlock import LOCK_NAME

REPO = Path(__file__).resolve().parents[2]
CONTENDERS = 6
ROUNDS = 5

# Waits for the start signal (a file), tries the lock, prints the outcome, and holds a won lock
# until its stdin closes, so that the losers try while the winner still holds it. The time
# between finding the holder dead and breaking its lock is stretched (as a slow disk or a
# preempted process would), to 50 ms + 30 ms x the contender's number: every contender sees the
# stale lock before anyone replaces it, and the later ones act after the first has taken over.
CONTENDER = """
import sys, time
from pathlib import Path
from seglib.engine.runlock import RunLock, RunLocked
real, delay = RunLock._stale, 0.05 + 0.03 * int(sys.argv[3])
def slow(self, holder):
    stale = real(self, holder)
    time.sleep(delay)
    return stale
RunLock._stale = slow
run, go = Path(sys.argv[1]), Path(sys.argv[2])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.0005)
try:
    lock = RunLock(run).acquire()
except RunLocked:
    print("locked", flush=True)
else:
    print("won", flush=True)
    sys.stdin.read()
    lock.release()
"""


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_one_of_several_processes_takes_over_a_stale_lock(tmp_path, round_):
    run = tmp_path / "unet_bce_s0"
    run.mkdir()
    stale = {"pid": dead_pid(), "host": socket.gethostname(), "since": time.time() - 60}
    (run / LOCK_NAME).write_text(json.dumps(stale))
    go = tmp_path / "go"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONTENDER, str(run), str(go), str(i)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(CONTENDERS)
    ]
    try:
        assert all(read_line(p).strip() == "ready" for p in procs)
        go.touch()  # all start at once
        outcomes = sorted(read_line(p).strip() for p in procs)
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(timeout=60)
    assert outcomes == ["locked"] * (CONTENDERS - 1) + ["won"]
    holder = json.loads((run / LOCK_NAME).read_text()) if (run / LOCK_NAME).exists() else None
    assert holder is None or holder["pid"] != stale["pid"]  # the winner released its own lock
