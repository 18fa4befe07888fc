"""The router and the three API providers, through the real SDKs, against the fake server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from stillroom.distill.keys import NoKeys
from stillroom.distill.provider import ProviderCallError, Request
from stillroom.distill.router import AllKeysDead, Concurrency, Router, RouterClosed
from stillroom.errors import UnknownName
from tests.fakellm import ENV, FakeLLMServer, fake_settings

APIS = ["openai", "gemini", "zhipu"]
SCHEMA = {"type": "object", "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
          "required": ["question", "answer"]}


@pytest.fixture(scope="module")
def srv():
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def fresh(srv):
    """The shared server with its per-key scripts and log cleared."""
    srv.keys.clear()
    srv.log.clear()
    return srv


def keys_for(monkeypatch, api: str, n: int, tag: str = "") -> list[str]:
    secrets = [f"{api}-{tag}k{i + 1}" for i in range(n)]
    monkeypatch.setenv(ENV[api], ",".join(secrets))
    return secrets


def ask(text: str = "What is the limit?", schema=SCHEMA) -> Request:
    return Request(messages=[{"role": "system", "content": "Write one QA pair as JSON."},
                             {"role": "user", "content": text}], json_schema=schema, schema_name="qa")


def make_router(srv, chain, calls=None, events=None, **kw) -> Router:
    return Router(fake_settings(srv, chain, **kw), on_call=(calls.append if calls is not None else None),
                  on_event=(events.append if events is not None else (lambda msg: None)))


@pytest.mark.parametrize("api", APIS)
def test_structured_reply_and_rotation_across_keys(fresh, monkeypatch, api):
    secrets = keys_for(monkeypatch, api, 3)
    calls = []
    router = make_router(fresh, [api], calls)
    replies = [router.complete(ask(f"q{i}"), unit_id=f"u{i}") for i in range(6)]
    assert all(json.loads(r.text).keys() == {"question", "answer"} for r in replies)
    assert [fresh.count(key=s) for s in secrets] == [2, 2, 2]
    assert {r.key_alias for r in replies} == {f"{api}#1", f"{api}#2", f"{api}#3"}
    assert [c.unit_id for c in calls] == [f"u{i}" for i in range(6)] and {c.status for c in calls} == {"ok"}
    assert all(c.tokens_in > 0 and c.tokens_out > 0 and c.model == f"fake-{api}" for c in calls)


def test_per_key_rpm_budget_keeps_under_the_server_limit(fresh, monkeypatch):
    secrets = keys_for(monkeypatch, "openai", 2)
    for s in secrets:
        # The server allows the client's 2/s per key; its burst is a little larger, as the client's first
        # request reaches the server late (client set-up) while the client's bucket already refills.
        fresh.key(s, rpm=120, burst_s=3)
    router = make_router(fresh, ["openai"], rpm=120)
    t0 = time.monotonic()
    for i in range(12):
        router.complete(ask(f"q{i}"))
    elapsed = time.monotonic() - t0
    assert fresh.count(outcome="rate_limit") == 0
    assert 0.8 <= elapsed < 6.0  # 8 go at once (burst), the other 4 at 4/s across two keys


@pytest.mark.parametrize("api", APIS)
def test_429_cools_the_key_for_retry_after_and_work_moves_on(fresh, monkeypatch, api):
    k1, k2 = keys_for(monkeypatch, api, 2)
    fresh.then(k1, "rate_limit", retry_after=30)
    calls = []
    router = make_router(fresh, [api], calls)
    t0 = time.monotonic()
    for i in range(4):
        assert router.complete(ask(f"q{i}")).key_alias == f"{api}#2"
    assert time.monotonic() - t0 < 10  # nobody waited out the 30 s cooldown
    assert fresh.count(key=k1) == 1 and fresh.count(key=k2) == 4
    assert calls[0].status == "rate_limited" and calls[0].key_alias == f"{api}#1"
    state = {r["alias"]: r for r in router.key_states()}
    assert state[f"{api}#1"]["state"] == "cooling" and state[f"{api}#1"]["rate_limited"] == 1
    assert state[f"{api}#2"]["state"] == "ok" and state[f"{api}#2"]["requests"] == 4


def test_when_every_key_cools_the_request_waits_for_the_earliest_instead_of_failing(fresh, monkeypatch):
    k1, k2 = keys_for(monkeypatch, "openai", 2)
    fresh.then(k1, "rate_limit", retry_after=5.0)
    fresh.then(k2, "rate_limit", retry_after=0.6)
    router = make_router(fresh, ["openai"])
    t0 = time.monotonic()
    assert router.complete(ask()).key_alias == "openai#2"  # the earlier recovery, not openai#1's
    assert time.monotonic() - t0 >= 0.55


@pytest.mark.parametrize("api", APIS)
def test_quota_retires_the_key_for_the_run(fresh, monkeypatch, api):
    k1, _ = keys_for(monkeypatch, api, 2)
    fresh.key(k1, quota=True)
    events = []
    router = make_router(fresh, [api], events=events)
    for i in range(5):
        router.complete(ask(f"q{i}"))
    assert fresh.count(key=k1) == 1
    assert events == [f"{api}#1 is out of quota; retired for this run"]
    assert {r["alias"]: r["state"] for r in router.key_states()} == {f"{api}#1": "retired", f"{api}#2": "ok"}


@pytest.mark.parametrize("api", APIS)
def test_invalid_key_is_disabled_with_alias_and_env_var(fresh, monkeypatch, api):
    k1, k2 = keys_for(monkeypatch, api, 2)
    fresh.key(k2, invalid=True)
    events, calls = [], []
    router = make_router(fresh, [api], calls, events)
    for i in range(4):
        assert router.complete(ask(f"q{i}")).key_alias == f"{api}#1"
    assert fresh.count(key=k2) == 1
    assert len(events) == 1 and f"{api}#2" in events[0] and ENV[api] in events[0] and k2 not in events[0]
    row = next(r for r in router.key_states() if r["alias"] == f"{api}#2")
    assert row["state"] == "disabled" and k2 not in row["last_error"]
    assert all(k2 not in (c.message or "") for c in calls)


@pytest.mark.parametrize("api", APIS)
def test_5xx_is_retried_on_another_key(fresh, monkeypatch, api):
    k1, k2 = keys_for(monkeypatch, api, 2)
    fresh.then(k1, "server")
    calls = []
    router = make_router(fresh, [api], calls)
    assert router.complete(ask()).key_alias == f"{api}#2"
    assert [c.status for c in calls] == ["server", "ok"]


@pytest.mark.parametrize("api", APIS)
def test_an_unreadable_reply_counts_as_a_server_error(fresh, monkeypatch, api):
    k1, _ = keys_for(monkeypatch, api, 2)
    fresh.then(k1, "unreadable")
    calls = []
    router = make_router(fresh, [api], calls)
    assert router.complete(ask()).key_alias == f"{api}#2"
    assert [c.status for c in calls] == ["server", "ok"]


def test_timeout_is_retried_on_another_key(fresh, monkeypatch):
    k1, _ = keys_for(monkeypatch, "openai", 2)
    fresh.then(k1, "slow", delay=1.5)
    calls = []
    router = make_router(fresh, ["openai"], calls, timeout=0.5)
    assert router.complete(ask()).key_alias == "openai#2"
    assert [c.status for c in calls] == ["timeout", "ok"] and calls[0].latency_ms >= 450


def test_transient_errors_stop_after_max_attempts(fresh, monkeypatch):
    (k1,) = keys_for(monkeypatch, "openai", 1)
    fresh.then(k1, "server", times=10)
    calls = []
    router = make_router(fresh, ["openai"], calls, max_attempts=3)
    with pytest.raises(ProviderCallError) as err:
        router.complete(ask())
    assert err.value.kind == "server" and len(calls) == 3


@pytest.mark.parametrize("kind,finish", [("truncated", "length"), ("malformed", "stop")])
@pytest.mark.parametrize("api", APIS)
def test_truncated_and_malformed_replies_come_back_as_they_are(fresh, monkeypatch, api, kind, finish):
    """The runner validates; the router neither retries nor repairs a reply it got."""
    (k1,) = keys_for(monkeypatch, api, 1)
    fresh.then(k1, kind)
    reply = make_router(fresh, [api]).complete(ask())
    assert reply.finish_reason == finish
    with pytest.raises(json.JSONDecodeError):
        json.loads(reply.text)


@pytest.mark.parametrize("api,finish", [("openai", "refusal"), ("gemini", "content_filter"), ("zhipu", "content_filter")])
def test_refusals_are_marked(fresh, monkeypatch, api, finish):
    (k1,) = keys_for(monkeypatch, api, 1)
    fresh.then(k1, "refuse")
    assert make_router(fresh, [api]).complete(ask()).finish_reason == finish


def test_fallback_takes_over_while_keys_cool_and_comes_back(fresh, monkeypatch):
    g1, g2 = keys_for(monkeypatch, "gemini", 2)
    keys_for(monkeypatch, "zhipu", 1)
    for k in (g1, g2):
        fresh.then(k, "rate_limit", retry_after=2.5)
    events = []
    router = make_router(fresh, ["gemini", "zhipu"], events=events)
    served = [router.complete(ask(f"q{i}")).provider for i in range(3)]
    assert served == ["zhipu"] * 3
    assert {r["state"] for r in router.key_states() if r["provider"] == "gemini"} == {"cooling"}
    time.sleep(2.6)  # the cooldowns began before the calls above returned
    assert router.complete(ask()).provider == "gemini"
    assert events == ["every key of gemini is cooling or dead; zhipu takes over", "gemini keys recovered; back to gemini"]


def test_fallback_when_every_key_is_dead(fresh, monkeypatch):
    (o1,) = keys_for(monkeypatch, "openai", 1)
    keys_for(monkeypatch, "gemini", 1)
    fresh.key(o1, invalid=True)
    router = make_router(fresh, ["openai", "gemini"])
    assert [router.complete(ask()).provider for _ in range(3)] == ["gemini"] * 3


def test_all_keys_dead_stops_with_each_alias_and_why(fresh, monkeypatch):
    o1, o2 = keys_for(monkeypatch, "openai", 2)
    (z1,) = keys_for(monkeypatch, "zhipu", 1)
    fresh.key(o1, invalid=True)
    fresh.key(o2, quota=True)
    fresh.key(z1, quota=True)
    router = make_router(fresh, ["openai", "zhipu"])
    with pytest.raises(AllKeysDead) as err:
        router.complete(ask())
    msg = str(err.value)
    assert "openai#1: disabled" in msg and "openai#2: retired" in msg and "zhipu#1: retired" in msg
    assert "resume" in msg and not any(s in msg for s in (o1, o2, z1))


def test_no_keys_names_the_env_var_and_local(fresh):
    with pytest.raises(NoKeys, match="GEMINI_API_KEYS.*--provider local"):
        make_router(fresh, ["gemini"])


def test_fallback_without_keys_is_skipped_with_a_note(fresh, monkeypatch):
    keys_for(monkeypatch, "openai", 1)
    events = []
    router = make_router(fresh, ["openai", "zhipu"], events=events)
    assert router.chain == ["openai"] and "zhipu has no keys" in events[0]


def test_unknown_provider_lists_the_known_ones(fresh):
    with pytest.raises(UnknownName, match="known: gemini, local, openai, zhipu$"):
        make_router(fresh, ["claude"])


def test_model_and_base_url_override_the_primary_only(srv, monkeypatch):
    keys_for(monkeypatch, "openai", 1)
    settings = fake_settings(srv, ["openai"])
    settings.providers.openai.base_url = "http://127.0.0.1:9/v1"  # nothing listens there
    router = Router(settings, model="other-model", base_url=srv.openai_url)
    assert router.complete(ask()).model == "other-model"


def test_close_wakes_a_waiting_request(fresh, monkeypatch):
    (k1,) = keys_for(monkeypatch, "openai", 1)
    fresh.then(k1, "rate_limit", retry_after=30)
    router = make_router(fresh, ["openai"])
    threading.Timer(0.3, router.close).start()
    t0 = time.monotonic()
    with pytest.raises(RouterClosed):
        router.complete(ask())
    assert time.monotonic() - t0 < 2


def test_many_threads_share_keys_without_loss(fresh, monkeypatch):
    secrets = keys_for(monkeypatch, "openai", 4)
    fresh.then(secrets[0], "rate_limit", times=3, retry_after=0.2)
    fresh.then(secrets[1], "server", times=2)
    router = make_router(fresh, ["openai"], concurrency=6)
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda i: router.complete(ask(f"q{i}")), range(40)))
    assert len(replies) == 40 and all(r.finish_reason == "stop" for r in replies)
    assert fresh.count(outcome="ok") == 40


def test_aimd_halves_once_per_burst_and_grows_back():
    c = Concurrency(8)
    starts = [c.acquire() for _ in range(4)]
    for s in starts:
        c.release(s, "rate_limited")  # four 429s from one burst: one cut
    assert c.limit == 4
    c.release(c.acquire(), "server")
    assert c.limit == 4  # other failures neither grow nor cut it
    for _ in range(8):
        c.release(c.acquire(), "ok")
    assert 5 <= c.limit <= 8
