"""API keys: where they come from, and one pool per provider that decides which key may call next.

A key is only ever shown by its alias (`openai#2`). The pool never sleeps and never calls out: it
answers "use this key" or "nothing is free for N seconds", and the router does the waiting.
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
import threading
import time
import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from stillroom.distill.provider import Key, ProviderCallError
from stillroom.errors import ConfigError, UsageError

log = logging.getLogger("stillroom.distill")


class NoKeys(UsageError):
    """The chosen provider has no key configured."""


def no_keys_message(provider: str, env_vars: tuple[str, ...]) -> str:
    names = " or ".join(env_vars) or "a key"
    return (f"no API key for provider {provider!r}: set {names} (comma-separated for several keys) or name a key "
            f"file with STILLROOM_KEYS_FILE; `--provider local` works without keys")


def load_keys(provider: str, env_vars: tuple[str, ...], keys_file: str = "",
              project_root: Path | None = None) -> list[Key]:
    """Keys from the environment first, then the key file; duplicates dropped, aliases `provider#n`."""
    found: list[tuple[str, str]] = []
    for var in env_vars:
        found += [(k, var) for k in _split(os.environ.get(var, ""))]
    path = keys_file or os.environ.get("STILLROOM_KEYS_FILE", "")
    if path:
        found += _from_file(Path(path).expanduser(), provider, env_vars, project_root)
    keys: list[Key] = []
    seen: set[str] = set()
    for secret, source in found:
        if secret not in seen:
            seen.add(secret)
            keys.append(Key(alias=f"{provider}#{len(keys) + 1}", secret=secret, source=source))
    return keys


def _split(value: str) -> list[str]:
    return [k for k in re.split(r"[,\s]+", value) if k]


def _from_file(path: Path, provider: str, env_vars: tuple[str, ...], root: Path | None) -> list[tuple[str, str]]:
    if not path.is_file():
        raise ConfigError(f"key file {path} not found — fix keys_file / STILLROOM_KEYS_FILE or remove it")
    if root is not None and path.resolve().is_relative_to(root.resolve()):
        raise ConfigError(f"key file {path} is inside the project, where it could be committed or exported — "
                          f"move it outside (e.g. ~/.config/stillroom/keys.toml)")
    text = path.read_text(encoding="utf-8")
    try:
        entries = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        # Also accept the .env style `OPENAI_API_KEYS=k1,k2`, which TOML rejects.
        entries = dict(line.split("=", 1) for line in text.splitlines()
                       if "=" in line and not line.lstrip().startswith("#"))
    wanted = {provider.lower(), *(v.lower() for v in env_vars)}
    out: list[tuple[str, str]] = []
    for name, value in entries.items():
        if name.strip().lower() in wanted:
            values = value if isinstance(value, list) else _split(str(value).strip().strip("\"'"))
            out += [(str(v), f"key file {path.name}") for v in values]
    return out


class TokenBucket:
    """`per_minute` spread evenly, with a burst of `burst_s` seconds' worth; a big take may go negative."""

    def __init__(self, per_minute: float, now: float, burst_s: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_s)
        self.level, self.stamp = self.capacity, now

    def _refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait(self, n: float, now: float) -> float:
        self._refill(now)
        need = min(n, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def take(self, n: float, now: float) -> None:
        self._refill(now)
        self.level -= n


@dataclass
class KeySlot:
    key: Key
    buckets: list[TokenBucket]
    state: str = "ok"  # ok | retired | disabled; "cooling" is derived from cooling_until
    cooling_until: float = 0.0
    dead_until: float = math.inf
    failures: int = 0
    requests: int = 0
    rate_limited: int = 0
    tokens: int = 0
    last_error: str | None = None


@dataclass(frozen=True)
class RetryPolicy:
    backoff_s: float = 1.0
    backoff_max_s: float = 60.0
    quota_reset_s: float = 0.0


class KeyPool:
    """All keys of one provider. Thread-safe; every method is quick and never blocks on I/O."""

    def __init__(self, provider: str, keys: list[Key], rpm: int = 0, tpm: int = 0,
                 policy: RetryPolicy = RetryPolicy(), clock: Callable[[], float] = time.monotonic,
                 notify: Callable[[str], None] = log.warning, rng: random.Random | None = None) -> None:
        self.provider, self.policy, self.clock, self.notify = provider, policy, clock, notify
        self.rng = rng or random.Random()
        self._lock = threading.Lock()
        self._next = 0
        now = clock()
        # Servers often enforce "60 RPM" as about one a second, so requests get a short burst; token
        # budgets are spent in big lumps (one call can be thousands), so they get a longer one.
        self.slots = [KeySlot(k, ([TokenBucket(rpm, now, burst_s=2)] if rpm else [])
                              + ([TokenBucket(tpm, now, burst_s=10)] if tpm else [])) for k in keys]
        self._rpm, self._tpm = rpm, tpm

    def _live(self, s: KeySlot, now: float) -> bool:
        if s.state != "ok" and now >= s.dead_until:
            s.state, s.failures = "ok", 0
        return s.state == "ok"

    def usable(self) -> bool:
        """Some key is neither dead nor cooling (it may still wait a moment for its rate budget)."""
        with self._lock:
            now = self.clock()
            return any(self._live(s, now) and s.cooling_until <= now for s in self.slots)

    def dead(self) -> bool:
        with self._lock:
            now = self.clock()
            return not any(self._live(s, now) for s in self.slots)

    def acquire(self, est_tokens: int) -> tuple[Key | None, float]:
        """A key whose budget allows the call now, or (None, seconds until one might); (None, inf) if all dead."""
        with self._lock:
            now, wait, n = self.clock(), math.inf, len(self.slots)
            for i in range(n):
                s = self.slots[(self._next + i) % n]
                if not self._live(s, now):
                    wait = min(wait, s.dead_until - now)
                    continue
                w = max([s.cooling_until - now] + [b.wait(c, now) for b, c in self._costs(s, est_tokens)])
                if w <= 0:
                    for b, c in self._costs(s, est_tokens):
                        b.take(c, now)
                    s.requests += 1
                    self._next = (self._next + i + 1) % n
                    return s.key, 0.0
                wait = min(wait, w)
            return None, wait

    def _costs(self, s: KeySlot, est_tokens: int) -> list[tuple[TokenBucket, float]]:
        costs = ([1.0] if self._rpm else []) + ([float(est_tokens)] if self._tpm else [])
        return list(zip(s.buckets, costs))

    def _slot(self, key: Key) -> KeySlot:
        return next(s for s in self.slots if s.key == key)

    def success(self, key: Key, tokens: int, est_tokens: int) -> None:
        with self._lock:
            s = self._slot(key)
            s.failures, s.tokens = 0, s.tokens + tokens
            if self._tpm:  # settle the estimate against what the call really used
                s.buckets[-1].take(tokens - est_tokens, self.clock())

    def failure(self, key: Key, err: ProviderCallError) -> None:
        """Cool, retire or disable the key according to what went wrong."""
        with self._lock:
            s, now = self._slot(key), self.clock()
            s.last_error = f"{err.kind}: {err.message}"[:300]
            if err.kind == "quota":
                s.state = "retired"
                s.dead_until = now + self.policy.quota_reset_s if self.policy.quota_reset_s else math.inf
                self.notify(f"{key.alias} is out of quota; retired "
                            + ("for this run" if math.isinf(s.dead_until) else f"for {self.policy.quota_reset_s:g}s"))
            elif err.kind == "auth":
                s.state = "disabled"
                self.notify(f"{key.alias} (from {key.source}) was rejected as invalid; disabled — "
                            f"check or replace that key")
            elif err.kind in ("rate_limited", "timeout", "server"):
                s.failures += 1
                s.rate_limited += err.kind == "rate_limited"
                delay = err.retry_after if err.retry_after is not None else self._backoff(s.failures)
                # A later, shorter Retry-After never cuts short a cooldown already running.
                s.cooling_until = max(s.cooling_until, now + delay)

    def _backoff(self, failures: int) -> float:
        full = min(self.policy.backoff_max_s, self.policy.backoff_s * 2 ** (failures - 1))
        return full * (0.5 + 0.5 * self.rng.random())

    def explain(self) -> str:
        """Each key's alias and why it cannot serve, for the all-keys-dead message."""
        return "; ".join(f"{s.key.alias}: {s.state} ({s.last_error or 'no error'})" for s in self.slots)

    def rows(self) -> list[dict]:
        """Rows for the `key_state` table: alias and counters only, never the key."""
        with self._lock:
            now, wall = self.clock(), datetime.now(timezone.utc).replace(tzinfo=None)
            out = []
            for s in self.slots:
                live = self._live(s, now)
                cooling = live and s.cooling_until > now
                out.append({"provider": self.provider, "alias": s.key.alias,
                            "state": "cooling" if cooling else s.state,
                            "cooling_until": wall + timedelta(seconds=s.cooling_until - now) if cooling else None,
                            "requests": s.requests, "rate_limited": s.rate_limited, "tokens": s.tokens,
                            "last_error": s.last_error})
            return out
