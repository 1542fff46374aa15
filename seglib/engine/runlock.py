"""One process per run folder: a lock file ``run.lock`` holding the owner's pid and host.

The file is created with ``O_CREAT | O_EXCL`` (atomic on local filesystems and NFSv3+), so two
processes can never both create it. A lock left by a process that died (``kill -9``, power
loss) on this host is detected (its pid no longer exists) and taken over; breaking it is itself
guarded by a second exclusive file so two processes cannot both take the same stale lock over.
A lock from another host cannot be checked from here: it is reported, never broken.
(``fcntl.flock`` would free itself on death but is POSIX-only and unreliable on NFS.)
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

LOCK_NAME = "run.lock"
STARTING_S = 10.0  # an empty lock file younger than this belongs to a process still writing it


class RunLocked(ValueError):
    """The run folder is in use by another live process; the message names both."""


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def _read(path: Path) -> dict | None:
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _create(path: Path, info: dict) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump(info, f)
        f.flush()
        os.fsync(f.fileno())
    return True


class RunLock:
    """Context manager: hold ``<run_dir>/run.lock`` for the duration of a run."""

    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir)
        self.path = self.dir / LOCK_NAME
        self.info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}

    def _stale(self, holder: dict | None) -> bool:
        if holder is None:  # empty or half-written: its creator may still be writing it
            try:
                return time.time() - self.path.stat().st_mtime > STARTING_S
            except FileNotFoundError:
                return True
        if holder.get("host") != self.info["host"]:
            return False
        return not _alive(holder.get("pid"))

    def _break(self, holder: dict | None) -> None:
        """Remove the stale lock ``holder``, unless someone else replaced it meanwhile."""
        guard = self.path.with_name(LOCK_NAME + ".break")
        if not _create(guard, self.info):
            g = _read(guard)
            if g is None or g.get("host") != self.info["host"] or _alive(g.get("pid")):
                return  # another process is breaking it right now: retry creating ours
            guard.unlink(missing_ok=True)  # its breaker died in the act
            return
        try:
            if _read(self.path) == holder:
                self.path.unlink(missing_ok=True)
        finally:
            guard.unlink(missing_ok=True)

    def acquire(self) -> RunLock:
        self._made = [d for d in (self.dir, *self.dir.parents) if not d.exists()]
        self.dir.mkdir(parents=True, exist_ok=True)
        for _ in range(50):
            if _create(self.path, self.info):
                return self
            holder = _read(self.path)
            if not self._stale(holder):
                who = (
                    f"process {holder.get('pid')} on {holder.get('host')}"
                    if holder
                    else "a process that is starting"
                )
                raise RunLocked(
                    f"{self.dir}: in use by {who} (lock file {self.path}); wait for it to "
                    "finish, or delete the lock file if that process is gone"
                )
            self._break(holder)
            time.sleep(0.01)
        raise RunLocked(f"{self.dir}: could not take over the stale lock {self.path}")

    def release(self) -> None:
        if _read(self.path) == self.info:
            self.path.unlink(missing_ok=True)
        for d in getattr(self, "_made", []):  # a run that wrote nothing leaves no empty folder
            try:
                d.rmdir()
            except OSError:
                break

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
