"""The run's machinery that knows nothing of LLMs: daemon worker threads, the one-run-per-project lock,
and Ctrl-C that asks for a stop instead of cutting a database write in half."""

from __future__ import annotations

import fcntl
import os
import queue
import signal
import threading
from pathlib import Path
from typing import Any, Callable

from stillroom.errors import UsageError


class WorkerPool:
    """Daemon worker threads: a stuck SDK call can never keep the process from exiting on Ctrl-C."""

    def __init__(self, size: int, work: Callable[[Any], Any], crashed: Callable[[Any, BaseException], Any]) -> None:
        self._crashed = crashed  # wraps an exception from `work` as a result the main thread re-raises
        self._in: queue.Queue = queue.Queue()
        self._out: queue.Queue = queue.Queue()
        self.in_flight = 0
        for _ in range(size):
            threading.Thread(target=self._serve, args=(work,), daemon=True).start()

    def _serve(self, work: Callable[[Any], Any]) -> None:
        while True:
            unit = self._in.get()
            try:
                self._out.put(work(unit))
            except BaseException as e:  # a bug: handed to the main thread, which re-raises it
                self._out.put(self._crashed(unit, e))

    def submit(self, unit: Any) -> None:
        self.in_flight += 1
        self._in.put(unit)

    def next(self, timeout: float) -> Any:
        try:
            res = self._out.get(timeout=timeout)
        except queue.Empty:
            return None
        self.in_flight -= 1
        return res

    def ready(self, timeout: float) -> list[Any]:
        """Waits up to `timeout` for one result, then takes all that are ready."""
        first = self.next(timeout)
        out = [] if first is None else [first]
        while out and (more := self.next(timeout=0)) is not None:
            out.append(more)
        return out


class RunLock:
    """One distill run per project at a time: two would each redo the other's pending units."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "distill.lock"

    def __enter__(self) -> None:
        self.path.parent.mkdir(exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise UsageError("another `stillroom distill` is running in this project — wait for it or stop it "
                             "(Ctrl-C), then run this command again") from None

    def __exit__(self, *exc: Any) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


class CtrlC:
    """The first Ctrl-C only asks the run to stop (checked between transactions, so a write is never cut
    in half); a second one interrupts at once. Outside the main thread, Ctrl-C keeps its default."""

    pressed = False

    def __enter__(self) -> "CtrlC":
        self._old = None
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True

    def __exit__(self, *exc: Any) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
