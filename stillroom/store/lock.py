"""One process at a time may open the DuckDB file; this lock makes the others queue instead of failing.

DuckDB lets exactly one process open a database file read-write. Every stillroom process (CLI
commands, batch runs, the review server) therefore opens the file only while holding an exclusive
`flock` on `<db>.lock`, for one short unit of work, and closes it before releasing. A process that
has to wait drops a `<db>.lock.wait-<pid>` marker so a long-running holder knows to step aside at its
next transaction boundary. See docs/storage.md.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from stillroom.errors import StoreBusy


class FileLock:
    def __init__(self, path: Path, timeout_s: float = 600.0) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self._fd: int | None = None
        self.acquired_at = 0.0

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._wait(fd)
        self._fd = fd
        self.acquired_at = time.monotonic()

    def _wait(self, fd: int) -> None:
        marker = self.path.with_name(f"{self.path.name}.wait-{os.getpid()}")
        marker.touch()
        deadline = time.monotonic() + self.timeout_s
        try:
            delay = 0.002
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        os.close(fd)
                        raise StoreBusy(
                            f"{self.path.parent}: the project database stayed busy for {self.timeout_s:.0f}s — "
                            "another stillroom process holds it; wait for it or stop it, then retry"
                        ) from None
                    time.sleep(delay)
                    delay = min(delay * 2, 0.05)
        finally:
            marker.unlink(missing_ok=True)

    def others_waiting(self) -> bool:
        """True when a live process is queued for the lock (markers of dead processes are cleared)."""
        prefix = f"{self.path.name}.wait-"
        for marker in self.path.parent.glob(prefix + "*"):
            pid = marker.name[len(prefix):]
            if pid.isdigit() and _alive(int(pid)):
                return True
            marker.unlink(missing_ok=True)
        return False

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
