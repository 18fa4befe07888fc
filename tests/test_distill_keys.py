"""The key pool and key loading, on a hand-driven clock: no server, no sleeping."""

from __future__ import annotations

import math

import pytest

from stillroom.distill.keys import KeyPool, RetryPolicy, TokenBucket, load_keys, no_keys_message
from stillroom.distill.provider import Key, ProviderCallError
from stillroom.errors import ConfigError


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make_pool(n=3, rpm=0, tpm=0, policy=RetryPolicy(backoff_s=1.0), notes=None):
    clock = Clock()
    keys = [Key(f"openai#{i + 1}", f"sk-secret-{i + 1}", "OPENAI_API_KEYS") for i in range(n)]
    pool = KeyPool("openai", keys, rpm, tpm, policy, clock=clock, notify=(notes.append if notes is not None else print))
    return pool, keys, clock


def test_keys_rotate_round_robin():
    pool, keys, _ = make_pool(3)
    got = [pool.acquire(10)[0] for _ in range(6)]
    assert got == keys + keys


def test_rpm_bucket_spreads_requests_and_reports_the_wait():
    pool, keys, clock = make_pool(1, rpm=60)  # 1/s, burst 2 s
    served = [pool.acquire(1)[0] for _ in range(2)]
    assert served == keys * 2
    key, wait = pool.acquire(1)
    assert key is None and wait == pytest.approx(1.0)
    clock.t += 1.0
    assert pool.acquire(1)[0] == keys[0]


def test_tpm_bucket_settles_estimate_against_real_usage():
    pool, keys, clock = make_pool(1, tpm=600)  # 10 tokens/s, burst 100
    key, _ = pool.acquire(50)
    pool.success(key, tokens=100, est_tokens=50)  # used 50 more than guessed: the budget is now empty
    assert pool.acquire(50) == (None, pytest.approx(5.0))
    clock.t += 5
    assert pool.acquire(50)[0] == keys[0]


def test_rate_limit_cools_for_retry_after_and_a_later_shorter_one_never_shortens_it():
    pool, keys, clock = make_pool(2)
    pool.failure(keys[0], ProviderCallError("rate_limited", "429", retry_after=30))
    clock.t += 1
    pool.failure(keys[0], ProviderCallError("rate_limited", "429", retry_after=2))
    assert [pool.acquire(1)[0] for _ in range(3)] == [keys[1]] * 3
    clock.t += 10
    assert pool.acquire(1)[0] == keys[1]
    row = next(r for r in pool.rows() if r["alias"] == "openai#1")
    assert row["state"] == "cooling" and row["rate_limited"] == 2
    clock.t += 20
    assert {pool.acquire(1)[0] for _ in range(2)} == set(keys)


def test_all_cooling_reports_earliest_recovery():
    pool, keys, clock = make_pool(2)
    pool.failure(keys[0], ProviderCallError("rate_limited", "429", retry_after=7))
    pool.failure(keys[1], ProviderCallError("rate_limited", "429", retry_after=3))
    assert not pool.usable() and not pool.dead()
    assert pool.acquire(1) == (None, pytest.approx(3))


def test_backoff_without_retry_after_grows_with_jitter():
    pool, keys, clock = make_pool(1, policy=RetryPolicy(backoff_s=1.0, backoff_max_s=4.0))
    waits = []
    for _ in range(4):
        pool.failure(keys[0], ProviderCallError("server", "HTTP 500"))
        waits.append(pool.acquire(1)[1])
        clock.t += waits[-1]
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0 and 2.0 <= waits[2] <= 4.0 and 2.0 <= waits[3] <= 4.0


def test_quota_retires_for_the_run_and_says_so_once():
    notes: list[str] = []
    pool, keys, clock = make_pool(2, notes=notes)
    pool.failure(keys[0], ProviderCallError("quota", "insufficient_quota"))
    clock.t += 10_000
    assert [pool.acquire(1)[0] for _ in range(3)] == [keys[1]] * 3
    assert notes == ["openai#1 is out of quota; retired for this run"]
    assert pool.rows()[0]["state"] == "retired"


def test_quota_reset_brings_a_retired_key_back():
    pool, keys, clock = make_pool(1, policy=RetryPolicy(quota_reset_s=60))
    pool.failure(keys[0], ProviderCallError("quota", "daily quota"))
    assert pool.dead() and pool.acquire(1) == (None, pytest.approx(60))
    clock.t += 61
    assert pool.acquire(1)[0] == keys[0]


def test_auth_error_disables_naming_alias_and_env_var_never_the_key():
    notes: list[str] = []
    pool, keys, _ = make_pool(1, notes=notes)
    pool.failure(keys[0], ProviderCallError("auth", "HTTP 401: key rejected"))
    assert pool.dead() and pool.acquire(1) == (None, math.inf)
    assert "openai#1" in notes[0] and "OPENAI_API_KEYS" in notes[0] and "sk-secret" not in notes[0]
    assert "disabled" in pool.explain() and "sk-secret" not in pool.explain()
    assert all("sk-secret" not in str(v) for row in pool.rows() for v in row.values())


def test_token_bucket_big_request_waits_for_a_full_bucket_not_forever():
    b = TokenBucket(60, now=0.0, burst_s=10)
    assert b.wait(1000, 0.0) == 0.0  # more than capacity: allowed once the bucket is full
    b.take(1000, 0.0)
    assert b.wait(1, 0.0) > 900


def test_load_keys_from_env_plural_then_single_deduplicated(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEYS", "k1, k2,k3")
    monkeypatch.setenv("OPENAI_API_KEY", "k2")
    keys = load_keys("openai", ("OPENAI_API_KEYS", "OPENAI_API_KEY"))
    assert [(k.alias, k.secret, k.source) for k in keys] == [
        ("openai#1", "k1", "OPENAI_API_KEYS"), ("openai#2", "k2", "OPENAI_API_KEYS"), ("openai#3", "k3", "OPENAI_API_KEYS")]
    assert "k1" not in repr(keys) and "k1" not in str(keys[0])


@pytest.mark.parametrize("text", ['gemini = ["g1", "g2"]\nopenai = "o1"\n', "GEMINI_API_KEYS=g1,g2\nOPENAI_API_KEY=o1\n"])
def test_load_keys_from_key_file_toml_or_env_lines(tmp_path, monkeypatch, text):
    path = tmp_path / "keys.toml"
    path.write_text(text)
    monkeypatch.setenv("STILLROOM_KEYS_FILE", str(path))
    keys = load_keys("gemini", ("GEMINI_API_KEYS", "GEMINI_API_KEY"))
    assert [k.secret for k in keys] == ["g1", "g2"] and keys[1].alias == "gemini#2"


def test_key_file_inside_the_project_is_refused(tmp_path):
    path = tmp_path / "keys.toml"
    path.write_text('openai = "o1"\n')
    with pytest.raises(ConfigError, match="inside the project"):
        load_keys("openai", ("OPENAI_API_KEYS",), str(path), project_root=tmp_path)
    with pytest.raises(ConfigError, match="not found"):
        load_keys("openai", ("OPENAI_API_KEYS",), str(tmp_path / "missing.toml"))


def test_no_keys_message_names_the_env_var_and_local():
    msg = no_keys_message("zhipu", ("ZHIPUAI_API_KEYS", "ZHIPUAI_API_KEY"))
    assert "ZHIPUAI_API_KEYS" in msg and "--provider local" in msg
