"""End to end through the real `openai` SDK against the fake server on 127.0.0.1: failures kept with
their raw text, keys shown only by alias, every key dead, Ctrl-C, and SIGKILL then resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from stillroom.distill.records import last_run
from stillroom.distill.runner import DistillRun, Options
from tests.fakellm import FakeLLMServer
from test_distill_run_helpers import CHUNKS_EN, CHUNKS_ZH, fake_reply, make_project, many_chunks, set_provider

K1, K2 = "sk-test-AAAA1111secret", "sk-test-BBBB2222secret"


@pytest.fixture
def server():
    with FakeLLMServer(reply=fake_reply) as srv:
        yield srv


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEYS", f"{K1},{K2}")


def openai_project(root, texts, server, **provider):
    p = make_project(root, texts, provider='"openai"', concurrency="4")
    set_provider(p, "openai", {"backoff_s": 0.05}, model="fake-model", rpm=0, base_url=server.openai_url, **provider)
    return p


def all_text(project) -> str:
    """Every value in every table, as text: a key must not be anywhere in it."""
    q = project.store().query
    tables = [t for (t,) in q("SELECT table_name FROM information_schema.tables")]
    return "\n".join(str(row) for t in tables for row in q(f"SELECT * FROM {t}"))


def cli(*args: str, cwd, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "stillroom", *args], cwd=cwd, env=os.environ.copy(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_replies_through_the_sdk_rotate_keys_and_keep_failures_with_raw_text(tmp_path, server, keys):
    project = openai_project(tmp_path / "p", CHUNKS_ZH + CHUNKS_EN, server)
    server.then(K1, "malformed")           # fenced, trailing comma: repaired locally
    server.then(K2, "garbage")             # not JSON: re-asked, and the re-ask succeeds
    server.then(K1, "truncated")           # finish_reason=length: a failure, not data
    server.then(K2, "rate_limit", retry_after=0.2)
    s = DistillRun(project, Options(), on_event=lambda m: None).execute()
    assert (s["planned"], s["done"], s["failed"], s["balanced"]) == (6, 5, {"truncated": 1}, True)
    assert s["rate_limited"] == 1 and s["tokens_in"] > 0
    store = project.store()
    raw = store.query("SELECT status, raw_text, key_alias FROM calls WHERE raw_text IS NOT NULL ORDER BY status")
    assert [r[0] for r in raw] == ["invalid", "truncated"]
    assert raw[0][1].startswith("Sure! Here is the JSON") and not raw[1][1].endswith("}")
    assert {a for (a,) in store.query("SELECT DISTINCT key_alias FROM calls")} == {"openai#1", "openai#2"}
    assert store.scalar("SELECT count(*) FROM items WHERE provider = 'openai' AND model = 'fake-model'") == 5
    text = all_text(project)
    assert K1 not in text and K2 not in text and "AAAA1111" not in text


def test_cli_flags_point_a_provider_at_another_server_and_model(tmp_path, server, keys):
    project = make_project(tmp_path / "p", CHUNKS_ZH, concurrency="2")
    proc = cli("distill", "--provider", "openai", "--base-url", server.openai_url, "--model", "other-model",
               "--task", "qa", "--limit", "2", "--json", cwd=project.root)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert (summary["planned"], summary["done"], summary["chain"]) == (2, 2, ["openai"])
    assert project.store().query("SELECT DISTINCT provider, model FROM items") == [("openai", "other-model")]
    assert project.store().query("SELECT DISTINCT model FROM work_units") == [("other-model",)]
    last = last_run(project.store())
    assert (last["status"], last["planned"], last["done"], last["balanced"]) == ("done", 2, 2, True)


def test_keys_command_shows_alias_and_state_never_the_key(tmp_path, server, keys):
    project = openai_project(tmp_path / "p", CHUNKS_EN, server)
    server.key(K2, invalid=True)
    DistillRun(project, Options(), on_event=lambda m: None).execute()
    proc = cli("keys", cwd=project.root)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "openai#2" in err and "disabled: 401" in err and "openai#1" in err and K2 not in err + out
    proc = cli("keys", "--json", cwd=project.root)
    rows = json.loads(proc.communicate(timeout=60)[0])["keys"]
    assert {r["alias"]: r["shown_state"] for r in rows} == {"openai#1": "ok", "openai#2": "disabled: 401"}


def test_every_key_dead_stops_cleanly_listing_each_alias_then_resumes(tmp_path, server, keys):
    project = openai_project(tmp_path / "p", CHUNKS_ZH, server)
    server.key(K1, quota=True)
    server.key(K2, invalid=True)
    proc = cli("distill", cwd=project.root)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "openai#1: retired" in err and "openai#2: disabled" in err and "resume with: stillroom distill" in err
    assert K1 not in err and K2 not in err
    server.key(K1, quota=False)
    server.key(K2, invalid=False)
    proc = cli("distill", "--json", cwd=project.root)
    out, err = proc.communicate(timeout=120)
    summary = json.loads(out)
    assert proc.returncode == 0, err
    assert (summary["done"], summary["pending"], summary["items"]) == (4, 0, {"numeric_qa": 2, "qa": 2})


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _counts(project) -> dict:
    q = project.store().query
    return {"units": dict(q("SELECT status, count(*) FROM work_units GROUP BY ALL")),
            "items": q("SELECT count(*) FROM items")[0][0],
            "dupes": q("SELECT count(*) FROM (SELECT unit_id FROM items GROUP BY unit_id HAVING count(*) > 1)")[0][0],
            "done_without_item": q("SELECT count(*) FROM work_units w WHERE status = 'done' AND NOT EXISTS "
                                   "(SELECT 1 FROM items i WHERE i.unit_id = w.id)")[0][0],
            "runs": dict(q("SELECT id, status FROM runs WHERE stage = 'distill'"))}


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_loses_nothing_and_duplicates_nothing(tmp_path, keys):
    n = 80
    with FakeLLMServer(reply=fake_reply, latency=(0.1, 0.2)) as server:
        project = openai_project(tmp_path / "p", many_chunks(n), server)
        proc = cli("distill", cwd=project.root)
        _wait_for(lambda: server.count(outcome="ok") >= 10)
        t0 = time.monotonic()
        status = cli("status", "--json", cwd=project.root)
        status_out = status.communicate(timeout=60)[0]
        assert status.returncode == 0 and time.monotonic() - t0 < 20  # the run never holds the database for long
        assert json.loads(status_out)["counts"]["chunks"] == n
        assert proc.poll() is None, "the run finished before the kill; make it longer"
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        after_kill = _counts(project)
        done = after_kill["units"].get("done", 0)
        assert sum(after_kill["units"].values()) == n  # the ledger balances: done + pending = planned
        assert 0 < done < n and after_kill["items"] == done
        assert after_kill["dupes"] == 0 and after_kill["done_without_item"] == 0
        assert list(after_kill["runs"].values()) == ["running"]
        sent_before = server.count(outcome="ok")

        proc = cli("distill", "--json", cwd=project.root)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        summary = json.loads(out)
        final = _counts(project)
        assert final["units"] == {"done": n} and final["items"] == n and final["dupes"] == 0
        assert summary["calls"] == n - done  # the rerun redid only what the kill left pending
        assert sent_before - done <= 4  # lost work: at most the units in flight (concurrency 4)
        assert sorted(final["runs"].values()) == ["done", "killed"]


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path, keys):
    n = 40
    with FakeLLMServer(reply=fake_reply, latency=(0.05, 0.1)) as server:
        project = openai_project(tmp_path / "p", many_chunks(n), server)
        proc = cli("distill", "--task", "qa", cwd=project.root)
        _wait_for(lambda: server.count(outcome="ok") >= 8)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, err
        assert "stopped by Ctrl-C" in err and "resume with: stillroom distill --task qa" in err
        counts = _counts(project)
        assert list(counts["runs"].values()) == ["stopped"]
        assert counts["items"] == counts["units"]["done"] and sum(counts["units"].values()) == n
        proc = cli("distill", "--task", "qa", "--json", cwd=project.root)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert _counts(project)["items"] == n


@pytest.mark.slow  # the first ingest in a session converts the local model's tokenizer
def test_ingested_markdown_to_items_with_heading_and_document_in_the_prompt(tmp_path, keys):
    from stillroom.project import init_project

    seen: list[str] = []

    def reply(req):
        seen.append(req.messages[-1]["content"])
        return fake_reply(req)

    project, _ = init_project(tmp_path / "p")
    (project.root / "policy.md").write_text(
        "# 差旅费管理办法\n\n## 第一章 住宿\n\n一般工作人员在直辖市出差，每人每天住宿费不超过500元。\n\n"
        "## 第二章 报销\n\n出差人员应在出差结束后15个工作日内办理报销，并附原始票据。\n", encoding="utf-8")
    ingest = cli("ingest", "policy.md", cwd=project.root)
    assert ingest.wait(timeout=120) == 0, ingest.communicate()[1]
    with FakeLLMServer(reply=reply) as server:
        proc = cli("distill", "--provider", "openai", "--base-url", server.openai_url, "--json", cwd=project.root)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    n_chunks = project.store().scalar("SELECT count(*) FROM chunks")
    assert summary["done"] == n_chunks == sum(summary["items"].values()) and summary["balanced"]
    assert any("文档：policy.md" in p and "章节：差旅费管理办法 > 第一章 住宿" in p for p in seen)
