"""The runner in-process, through the real router, with `ScriptedProvider` (a real Provider subclass)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from stillroom.distill.provider import Completion, ProviderCallError
from stillroom.distill.records import ledger
from stillroom.distill.runner import DistillRun, Options
from stillroom.errors import UnknownName
from test_distill_run_helpers import (CHUNKS_EN, CHUNKS_ZH, ScriptedProvider, add_chunks, chunk_of, good_reply,
                                      make_project, register_scripted)


@pytest.fixture
def scripted(monkeypatch):
    """Each test scripts the provider afresh; `calls` lists the chunk of every call made."""
    monkeypatch.setattr(ScriptedProvider, "calls", [])

    def use(fn):
        monkeypatch.setattr(ScriptedProvider, "script", staticmethod(fn))
    use(lambda r: good_reply(r.schema_name, chunk_of(r.messages)))
    return use


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("SCRIPTED_API_KEYS", "scripted-secret-1")
    register_scripted(monkeypatch)
    p = make_project(tmp_path / "proj", CHUNKS_ZH + CHUNKS_EN, provider='"scripted"')
    p.settings.distill.providers.backoff_s = 0.0  # retries in these tests need no real waiting
    return p


def run(project, **opts) -> dict:
    return DistillRun(project, Options(**opts), on_event=lambda msg: None).execute()


def test_a_run_writes_items_with_a_balanced_ledger_and_a_rerun_calls_nothing(project, scripted):
    s = run(project)
    assert (s["status"], s["planned"], s["done"], s["pending"], s["failed"], s["balanced"]) == ("done", 6, 6, 0, {}, True)
    assert sum(s["items"].values()) == 6 and set(s["items"]) == {"qa", "numeric_qa"}
    assert s["mix"]["numeric_qa"]["reached"] >= 0.3
    store = project.store()
    rows = store.query_dicts("SELECT i.*, c.text AS chunk FROM items i JOIN chunks c ON c.id = i.chunk_id")
    for r in rows:
        msgs = json.loads(r["messages"])
        assert [m["role"] for m in msgs] == ["user", "assistant"]
        assert (r["question"], r["answer"], r["origin"]) == (msgs[0]["content"], msgs[1]["content"], "distill")
        assert r["provider"] == "scripted" and r["model"] == "scripted-1" and r["prompt_hash"].startswith("prm_")
        if r["task"] == "numeric_qa":
            figure = json.loads(r["meta"])["figures"][0]["text"]
            assert figure in r["chunk"] and figure in r["answer"]
    assert store.scalar("SELECT count(*) FROM calls WHERE status = 'ok' AND key_alias = 'scripted#1'") == 6
    calls_before = len(ScriptedProvider.calls)
    again = run(project)
    assert len(ScriptedProvider.calls) == calls_before and again["calls"] == 0
    assert (again["planned"], again["done"], again["items"]) == (6, 6, s["items"])
    assert store.scalar("SELECT count(*) FROM items") == 6
    assert store.scalar("SELECT count(*) FROM runs WHERE stage = 'distill' AND status = 'done'") == 2


def test_failed_replies_are_kept_with_raw_text_and_reason_and_the_ledger_balances(project, scripted):
    def script(req):
        chunk = chunk_of(req.messages)
        if "原始票据" in chunk:
            return "Sure! {question: oops"  # twice: the re-ask gets the same
        if "财务部" in chunk:
            return Completion(text='{"question": "谁负责解', finish_reason="length", model="scripted-1")
        if "receipts" in chunk:
            return '{"refused_because": "nothing to ask"}'
        if "London" in chunk:
            return "```json\n" + good_reply(req.schema_name, chunk)[:-1] + ",}\n```"  # repaired locally
        return good_reply(req.schema_name, chunk)
    scripted(script)
    s = run(project)
    assert s["failed"] == {"invalid": 1, "truncated": 1, "refused": 1}
    assert (s["planned"], s["done"], s["pending"], s["balanced"]) == (6, 3, 0, True)
    assert sum(s["items"].values()) == 3
    store = project.store()
    failed = dict(store.query("SELECT c.status, c.raw_text FROM calls c WHERE c.status <> 'ok'"))
    assert failed["truncated"] == '{"question": "谁负责解' and failed["refused"] == '{"refused_because": "nothing to ask"}'
    assert failed["invalid"] == "Sure! {question: oops"
    assert store.scalar("SELECT count(*) FROM calls WHERE status = 'invalid'") == 2  # the reply and the re-ask
    events = [m for (m,) in store.query("SELECT message FROM run_events WHERE run_id = ?", [s["run_id"]])]
    assert len(events) == 3 and any(e.startswith("qa failed: invalid: - not valid JSON") or "invalid" in e for e in events)


def test_rerun_retries_provider_failures_and_retry_failed_redoes_invalid_replies(project, scripted):
    project.settings.distill.providers.max_attempts = 1
    scripted(lambda r: (_ for _ in ()).throw(ProviderCallError("server", "HTTP 500"))
             if "票据" in chunk_of(r.messages) else ("not json" if "财务部" in chunk_of(r.messages)
                                                    else good_reply(r.schema_name, chunk_of(r.messages))))
    first = run(project)
    assert first["failed"] == {"server": 1, "invalid": 1} and first["balanced"]
    scripted(lambda r: good_reply(r.schema_name, chunk_of(r.messages)))
    second = run(project)
    assert second["failed"] == {"invalid": 1} and second["done"] == 5 and second["calls"] == 1
    third = run(project, retry_failed=True)
    assert third["failed"] == {} and third["done"] == 6 and third["calls"] == 1
    assert project.store().scalar("SELECT count(*) FROM items") == 6


def test_a_run_of_rejected_requests_stops_early_naming_the_likely_cause(project, scripted):
    add_chunks(project, [f"第{i}条。" for i in range(30)], file_name="more.md")
    project.settings.distill.concurrency = 2
    scripted(lambda r: (_ for _ in ()).throw(ProviderCallError("bad_request", "HTTP 404: model not found")))
    s = run(project)
    assert s["status"] == "stopped" and "requests in a row were rejected (HTTP 404: model not found)" in s["stopped_because"]
    assert s["failed"]["bad_request"] < 12 and s["pending"] > 20 and s["balanced"]
    scripted(lambda r: good_reply(r.schema_name, chunk_of(r.messages)))
    assert run(project)["done"] == 36  # rejected units are retried on the next run


def test_every_key_dead_stops_the_run_resumably_naming_each_key(project, scripted):
    scripted(lambda r: (_ for _ in ()).throw(ProviderCallError("auth", "HTTP 401: key rejected")))
    s = run(project)
    assert s["status"] == "stopped" and "scripted#1: disabled" in s["stopped_because"]
    assert (s["done"], s["pending"], s["balanced"]) == (0, 6, True)
    assert project.store().query("SELECT state FROM key_state WHERE alias = 'scripted#1'") == [("disabled",)]
    scripted(lambda r: good_reply(r.schema_name, chunk_of(r.messages)))
    again = run(project)
    assert (again["status"], again["done"]) == ("done", 6)


def test_a_prompt_change_plans_new_units_and_never_mixes_silently(project, scripted):
    first = run(project, tasks=["qa"])
    run(project, tasks=["template"], limit=2)
    hashes = project.store().query("SELECT task, count(DISTINCT prompt_hash) FROM items GROUP BY ALL ORDER BY 1")
    assert hashes == [("qa", 2), ("template", 1)]  # qa: the zh and the en prompt
    project.settings.distill.language = "en"  # the 4 Chinese chunks now get the English prompt: new units
    again = run(project, tasks=["qa"])
    assert again["calls"] == 4 and again["planned"] == 6 and first["run_id"] != again["run_id"]
    assert project.store().query("SELECT count(*), count(DISTINCT prompt_hash) FROM items WHERE task = 'qa'") == [(10, 2)]


def test_new_chunks_keep_earlier_routing_and_limit_takes_the_first_chunks(project, scripted):
    first = run(project, limit=3)
    assert first["planned"] == 3
    add_chunks(project, ["新增一段没有数字的文字。", "另一段：限额为800元。"], file_name="zz-extra.md")
    s = run(project)
    assert s["planned"] == 8 and s["calls"] == 5
    assert project.store().scalar("SELECT count(DISTINCT task) FROM work_units") == 2


def test_one_distill_run_per_project(project, scripted):
    from stillroom.distill.workers import RunLock
    from stillroom.errors import UsageError

    with RunLock(project.state_dir):
        with pytest.raises(UsageError, match="another `stillroom distill` is running"):
            run(project)
    assert run(project)["done"] == 6


def test_dry_run_estimates_without_calling_or_writing(project, scripted):
    est = DistillRun(project, Options()).dry_run()
    assert est["units"] == 6 and est["tokens_in"] > 1000 and est["already_done"] == 0
    assert est["cost_usd"] is None  # no price for the scripted provider
    assert ScriptedProvider.calls == [] and project.store().scalar("SELECT count(*) FROM work_units") == 0


def test_unknown_task_or_provider_lists_the_known_ones(project):
    with pytest.raises(UnknownName, match="known: json_dialog, json_task, multiturn, numeric_qa, qa, template, worked_problem"):
        DistillRun(project, Options(tasks=["qa", "nope"]))
    with pytest.raises(UnknownName, match=r"unknown provider 'nope'; known: .*gemini, local, openai.*zhipu"):
        DistillRun(project, Options(provider="nope"))


def cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stillroom", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_cli_no_keys_names_the_env_var_and_local(project):
    r = cli("distill", "--provider", "openai", cwd=project.root)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "error: no API key for provider 'openai': set OPENAI_API_KEYS or OPENAI_API_KEY (comma-separated for several "
        "keys) or name a key file with STILLROOM_KEYS_FILE; `--provider local` works without keys"]
    r = cli("distill", "--task", "nope", "--dry-run", cwd=project.root)
    assert r.returncode == 2 and "unknown task 'nope'; known: json_dialog, json_task, multiturn, numeric_qa, qa, template, worked_problem" in r.stderr


def test_cli_dry_run_json(project):
    r = cli("distill", "--provider", "local", "--dry-run", "--json", cwd=project.root)
    assert r.returncode == 0, r.stderr
    est = json.loads(r.stdout)
    assert est["provider"] == "local" and est["units"] == 6 and est["cost_usd"] == 0.0
    assert len(est["plan"]) == 6 and {u["task"] for u in est["plan"]} == {"qa", "numeric_qa"}
    assert re.fullmatch(r"\d+", str(est["tokens_in"]))


def test_ledger_counts_only_the_runs_units_and_catches_a_done_unit_without_items(project, scripted):
    s = run(project, limit=2)
    assert ledger(project.store(), s["run_id"])["planned"] == 2 and s["balanced"]
    with project.store().transaction() as con:
        con.execute("DELETE FROM items WHERE id = (SELECT min(id) FROM items)")
    assert ledger(project.store(), s["run_id"])["balanced"] is False
