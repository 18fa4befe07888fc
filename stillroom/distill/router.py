"""The router: one `complete(request)` that picks a provider along the fallback chain and a key from
its pool, bounds concurrency per provider (AIMD on 429s), retries what is worth retrying and reports
every attempt. Threads are the concurrency model: the SDKs are synchronous."""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from stillroom.distill.keys import KeyPool, NoKeys, RetryPolicy, load_keys, no_keys_message
from stillroom.distill.provider import PROVIDERS, Completion, Key, Provider, ProviderCallError, Request
from stillroom.errors import StillroomError
from stillroom.settings.distill import DistillSettings, ProviderSettings

log = logging.getLogger("stillroom.distill")


class AllKeysDead(StillroomError):
    """Every key of every provider in the chain is retired or disabled; the run stops, resumable."""


class RouterClosed(StillroomError):
    """`Router.close()` was called (e.g. Ctrl-C) while a request was waiting."""


@dataclass(frozen=True)
class CallRecord:
    """One attempt, as the runner stores it in `calls`. Carries the key alias, never the key."""

    unit_id: str | None
    provider: str
    key_alias: str
    model: str
    latency_ms: float
    tokens_in: int
    tokens_out: int
    status: str  # ok, or the ProviderCallError kind
    error_class: str | None
    message: str | None
    finish_reason: str | None


class Concurrency:
    """A semaphore whose size follows AIMD: +1 per window of successes, halved on a 429."""

    def __init__(self, most: int) -> None:
        self.most, self.limit, self.in_flight = most, float(most), 0
        self._cond = threading.Condition()
        self._last_cut = 0.0

    def acquire(self) -> float:
        with self._cond:
            self._cond.wait_for(lambda: self.in_flight < max(1, int(self.limit)))
            self.in_flight += 1
            return time.monotonic()

    def release(self, started: float, status: str) -> None:
        """`status` is "ok" or the error kind; only successes grow the limit and only 429s cut it."""
        with self._cond:
            self.in_flight -= 1
            # Only calls sent after the last cut may cut again: one burst of 429s halves once.
            if status == "rate_limited" and started >= self._last_cut:
                self.limit, self._last_cut = max(1.0, self.limit / 2), time.monotonic()
            elif status == "ok":
                self.limit = min(float(self.most), self.limit + 1 / self.limit)
            self._cond.notify_all()


def resolve_chain(settings: DistillSettings, provider: str | None = None, keys_file: str = "") -> list[str]:
    """The primary provider, then `fallback`. No provider named: the first in `fallback` with keys, else local."""
    primary = provider or settings.provider
    if not primary:
        primary = next((n for n in settings.fallback if _keys_for(n, keys_file or settings.providers.keys_file)),
                       "local")
    return [primary] + [n for n in settings.fallback if n != primary]


def _keys_for(name: str, keys_file: str, root: Path | None = None) -> list[Key]:
    cls = PROVIDERS.get(name)
    if not cls.needs_key:
        return [Key(alias=f"{name}#1", secret="", source="none")]
    return load_keys(name, cls.key_env_vars, keys_file, root)


class Router:
    """`complete(request)`, from many threads. `settings`: the [distill] section (or all settings);
    `chain`: providers in fallback order (default: `resolve_chain`); `model`/`base_url` override the
    first provider's for this run; `on_call` gets every attempt, `on_event` the one-line notices
    (key retired or disabled, fallback taking over or handing back)."""

    def __init__(self, settings: Any, chain: list[str] | None = None,
                 on_call: Callable[[CallRecord], None] | None = None,
                 on_event: Callable[[str], None] = log.warning, *, model: str | None = None,
                 base_url: str | None = None, project_root: Path | None = None) -> None:
        distill: DistillSettings = getattr(settings, "distill", settings)
        self.settings, self.on_call, self.on_event = distill, on_call, on_event
        self.chain = chain or resolve_chain(distill)
        p = distill.providers
        policy = RetryPolicy(p.backoff_s, p.backoff_max_s, p.quota_reset_s)
        self.providers: dict[str, Provider] = {}
        self.pools: dict[str, KeyPool] = {}
        self.concurrency: dict[str, Concurrency] = {}
        for i, name in enumerate(self.chain):
            cls = PROVIDERS.get(name)
            ps: ProviderSettings = getattr(p, name, None) or cls.Settings()
            if i == 0 and (model or base_url):
                ps = ps.model_copy(update={k: v for k, v in (("model", model), ("base_url", base_url)) if v})
            keys = _keys_for(name, p.keys_file, project_root)
            if not keys:
                if i == 0:
                    raise NoKeys(no_keys_message(name, cls.key_env_vars))
                on_event(f"fallback provider {name} has no keys ({' or '.join(cls.key_env_vars)}); skipped")
                continue
            self.providers[name] = cls(ps)
            self.pools[name] = KeyPool(name, keys, ps.rpm, ps.tpm, policy, notify=on_event)
            self.concurrency[name] = Concurrency(min(distill.concurrency, cls.max_in_flight or distill.concurrency))
        self.chain = [n for n in self.chain if n in self.providers]
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._serving = self.chain[0]

    def close(self) -> None:
        """Wake every waiting request with `RouterClosed`; calls already sent finish normally."""
        self._closed.set()

    def key_states(self) -> list[dict]:
        return [row for pool in self.pools.values() for row in pool.rows()]

    def complete(self, request: Request, unit_id: str | None = None) -> Completion:
        """One reply for `request`, or a `ProviderCallError` (bad request, or transient errors past
        `max_attempts`), `AllKeysDead`, or `RouterClosed`. 429s, quota and auth errors move on to
        another key and never count as attempts."""
        attempts = 0
        while True:
            name, key, est = self._pick(request)
            provider, slots = self.providers[name], self.concurrency[name]
            started, t0 = slots.acquire(), time.perf_counter()
            err: ProviderCallError | None = None
            try:
                completion = provider.call(request, key)
            except ProviderCallError as e:
                err = ProviderCallError(e.kind, e.message.replace(key.secret, key.alias) if key.secret else e.message,
                                        e.retry_after)
            finally:
                slots.release(started, "ok" if err is None else err.kind)
            latency = (time.perf_counter() - t0) * 1000
            if err is None:
                self.pools[name].success(key, completion.tokens_in + completion.tokens_out, est)
                done = completion.model_copy(update={"provider": name, "key_alias": key.alias, "latency_ms": latency,
                                                     "model": completion.model or provider.settings.model})
                self._record(unit_id, done, "ok", None, None)
                return done
            self.pools[name].failure(key, err)
            failed = Completion(text="", finish_reason="error", model=provider.settings.model, provider=name,
                                key_alias=key.alias, latency_ms=latency)
            self._record(unit_id, failed, err.kind, type(err).__name__, err.message)
            if err.kind == "bad_request":
                raise err
            if err.kind in ("timeout", "server"):
                attempts += 1
                if attempts >= self.settings.providers.max_attempts:
                    raise err

    def _pick(self, request: Request) -> tuple[str, Key, int]:
        """Walk the chain: the first provider with a key that is neither dead nor cooling serves,
        waiting for that key's rate budget if need be; when none is, wait for the earliest recovery."""
        while not self._closed.is_set():
            waits: list[float] = []
            for name in self.chain:
                pool = self.pools[name]
                usable = pool.usable()
                est = request.estimated_tokens(self.providers[name].settings.max_tokens)
                key, wait = pool.acquire(est)
                if key is not None:
                    self._note_serving(name)
                    return name, key, est
                waits.append(wait)
                if usable:
                    break  # its keys are fine and only its budget is spent: wait rather than fall back
            if all(math.isinf(w) for w in waits) and all(pool.dead() for pool in self.pools.values()):
                raise AllKeysDead("every key is retired or disabled — fix or add keys, then run the same "
                                  "command again to resume:\n  " + "\n  ".join(p.explain() for p in self.pools.values()))
            # Wake at least once a second: an earlier provider in the chain may have recovered.
            self._closed.wait(min(min(waits), 1.0))
        raise RouterClosed("stopped before this request was sent")

    def _note_serving(self, name: str) -> None:
        with self._lock:
            if name != self._serving:
                before, self._serving = self._serving, name
                if self.chain.index(name) > self.chain.index(before):
                    self.on_event(f"every key of {before} is cooling or dead; {name} takes over")
                else:
                    self.on_event(f"{name} keys recovered; back to {name}")

    def _record(self, unit_id: str | None, c: Completion, status: str, error_class: str | None,
                message: str | None) -> None:
        if self.on_call is not None:
            self.on_call(CallRecord(unit_id, c.provider, c.key_alias, c.model, c.latency_ms, c.tokens_in,
                                    c.tokens_out, status, error_class, message, c.finish_reason))
