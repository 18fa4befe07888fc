"""Logins held in server memory, per-session CSRF tokens, and a limiter for wrong passwords.

Sessions live in this process only: a restart logs everyone out but loses no decision (those are
in the database the moment they are made). The cookie carries a random token and nothing else.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass

COOKIE = "stillroom_session"
LOGIN_COOKIE = "stillroom_login"  # double-submit CSRF token for the login form (no session yet)


@dataclass
class Session:
    user: str
    is_admin: bool
    csrf: str
    started: float
    seen: float
    checked: float  # when the account was last found enabled


class Sessions:
    def __init__(self, idle_s: float, max_s: float) -> None:
        self.idle_s, self.max_s = idle_s, max_s
        self._by_token: dict[str, Session] = {}
        self._mu = threading.Lock()

    def create(self, user: str, is_admin: bool) -> str:
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._mu:
            self._by_token[token] = Session(user, is_admin, secrets.token_urlsafe(32), now, now, now)
        return token

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        now = time.monotonic()
        with self._mu:
            s = self._by_token.get(token)
            if s is None:
                return None
            if now - s.seen > self.idle_s or now - s.started > self.max_s:
                del self._by_token[token]
                return None
            s.seen = now
            return s

    def end(self, token: str | None) -> None:
        with self._mu:
            self._by_token.pop(token or "", None)

    def end_user(self, user: str) -> None:
        with self._mu:
            for t in [t for t, s in self._by_token.items() if s.user == user]:
                del self._by_token[t]


def tokens_match(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(expected.encode(), given.encode())


class LoginLimiter:
    """At most `max_failures` wrong passwords per key (a user name, a client address) in `window_s`."""

    def __init__(self, max_failures: int, window_s: float) -> None:
        self.max_failures, self.window_s = max_failures, window_s
        self._fails: dict[str, deque[float]] = {}
        self._mu = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._fails.setdefault(key, deque())
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def retry_after(self, key: str) -> int:
        """Seconds until a login for `key` may be tried again (0 = now)."""
        now = time.monotonic()
        with self._mu:
            q = self._recent(key, now)
            return int(self.window_s - (now - q[0])) + 1 if len(q) >= self.max_failures else 0

    def failed(self, key: str) -> None:
        now = time.monotonic()
        with self._mu:
            self._recent(key, now).append(now)

    def succeeded(self, key: str) -> None:
        with self._mu:
            self._fails.pop(key, None)
