"""One SDK client per key, built once and shared by threads (the SDK clients are thread-safe)."""

from __future__ import annotations

import threading
from typing import Callable, Generic, TypeVar

C = TypeVar("C")


class ClientCache(Generic[C]):
    def __init__(self, make: Callable[[str], C]) -> None:
        self._make, self._clients, self._lock = make, {}, threading.Lock()

    def get(self, secret: str) -> C:
        with self._lock:
            if secret not in self._clients:
                self._clients[secret] = self._make(secret)
            return self._clients[secret]
