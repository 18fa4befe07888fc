"""How the review server shares the DuckDB file with batch runs (see docs/review.md).

One `Store` per server; request threads take turns on it through `DbGate.use()`. The file stays
open while requests keep coming (opening it costs ~30 ms and a cold cache ~100 ms more on a large
store, too slow to pay per key press). Between requests it is closed as soon as another process
queues for the file lock (checked every TICK_S), and in any case `idle_close_s` after the last
request. While a request runs, `Store` itself steps aside at the next transaction boundary
whenever another process is waiting.
"""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack, contextmanager
from typing import Iterator

from stillroom.store import Store

TICK_S = 0.02


class DbGate:
    def __init__(self, store: Store, idle_close_s: float) -> None:
        self.store = store
        self.idle_close_s = idle_close_s
        self._mu = threading.Lock()
        self._queue_mu = threading.Lock()
        self._queued = 0  # threads waiting for `_mu`
        self._open: ExitStack | None = None
        self._last_used = 0.0
        self._stop = threading.Event()
        self._closer = threading.Thread(target=self._close_when_idle, name="db-idle-closer", daemon=True)
        self._closer.start()

    @contextmanager
    def use(self) -> Iterator[Store]:
        self._count(+1)
        with self._mu:
            self._count(-1)
            if self._open is None:
                self._open = ExitStack()
                self._open.enter_context(self.store.session())
            try:
                yield self.store
            finally:
                self._last_used = time.monotonic()
                if self.idle_close_s == 0:
                    self._close()

    def _count(self, step: int) -> None:
        with self._queue_mu:
            self._queued += step

    @property
    def waiting(self) -> bool:
        """True while a thread waits to use the store (background work holding it should step aside)."""
        return self._queued > 0

    def _close(self) -> None:
        if self._open is not None:
            self._open.close()
            self._open = None

    def _close_when_idle(self) -> None:
        while not self._stop.wait(TICK_S):
            if self._open is None:
                continue
            idle_for = time.monotonic() - self._last_used
            if (idle_for >= self.idle_close_s or self.store.others_waiting()) and self._mu.acquire(blocking=False):
                try:  # a request in flight keeps it: Store steps aside at its transaction boundary
                    self._close()
                finally:
                    self._mu.release()

    @property
    def is_open(self) -> bool:
        return self._open is not None

    def shutdown(self) -> None:
        self._stop.set()
        self._closer.join(timeout=2)
        with self._mu:
            self._close()
