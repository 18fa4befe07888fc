"""docs/extending.md stays true: every example file on the page is saved exactly as shown into a fresh
project, the section's stillroom.toml lines are its settings, and the section's commands run through the
CLI against the fake LLM server on 127.0.0.1. The registries are put back after each test, so the
examples' names never leak into other tests.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stillroom.cli import app
from stillroom.curate.exporters import EXPORTERS
from stillroom.curate.scorers import SCORERS
from stillroom.curate.verify import VERIFIERS
from stillroom.distill.provider import PROVIDERS, Request
from stillroom.distill.router import Router
from stillroom.distill.tasks import TASKS
from stillroom.ingest.extractors import EXTRACTORS
from stillroom.project import Project, init_project
from stillroom.settings import validate_settings
from tests.fakellm import FakeLLMServer, default_reply
from test_distill_run_helpers import CHUNKS_EN, CHUNKS_ZH, TITLES, add_chunks, fake_reply

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
FENCE = re.compile(r'^```(\w+)(?: title="([^"]+)")?\s*$')


@dataclass
class Block:
    lang: str
    title: str | None
    text: str


def page() -> dict[str, list[Block]]:
    """The page's fenced blocks by `## ` section ("" for the introduction)."""
    out: dict[str, list[Block]] = {"": []}
    section, block, lines = "", None, []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if block is None and line.startswith("## "):
            section = line[3:].strip()
            out[section] = []
        elif block is None and (m := FENCE.match(line)):
            block, lines = m, []
        elif block is not None and line.rstrip() == "```":
            out[section].append(Block(block.group(1), block.group(2), "\n".join(lines) + "\n"))
            block = None
        elif block is not None:
            lines.append(line)
    return out


SECTIONS = page()


@pytest.fixture(autouse=True)
def registries(monkeypatch):
    """Each registry as it was before the test, and no plugin module left imported."""
    for reg in (PROVIDERS, TASKS, SCORERS, EXPORTERS, EXTRACTORS, VERIFIERS):
        reg.names()  # built-ins first: restoring an unloaded registry would lose them
        monkeypatch.setattr(reg, "_items", dict(reg._items))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("stillroom_plugin_"):
            del sys.modules[name]


def reply(req) -> str:
    """Built-in tasks get a grounded reply; any other schema (the page's task) one filled from its properties."""
    return fake_reply(req) if (req.json_schema or {}).get("title") in TITLES else default_reply(req)


@pytest.fixture(scope="module")
def server():
    with FakeLLMServer(reply=reply) as srv:
        yield srv


def toml_value(v) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return json.dumps(v)


def merge(into: dict, extra: dict) -> dict:
    for k, v in extra.items():
        into[k] = merge(into.get(k, {}), v) if isinstance(v, dict) and isinstance(into.get(k), dict) else v
    return into


def project_from(section: str, root: Path, settings: dict | None = None) -> Project:
    """A project holding the section's files as the page shows them; its stillroom.toml is the section's
    settings (plus `settings`, what the test needs: the fake server's address)."""
    project, _ = init_project(root)
    config: dict = {}
    for block in SECTIONS[section]:
        if block.title == "stillroom.toml":
            merge(config, tomllib.loads(block.text))
        elif block.title:
            (root / block.title).parent.mkdir(parents=True, exist_ok=True)
            (root / block.title).write_text(block.text, encoding="utf-8")
    merge(config, settings or {})
    validate_settings(config)
    project.config_path.write_text("".join(f"[{table}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in keys.items())
                                           for table, keys in config.items()), encoding="utf-8")
    return Project(project.root)


def run_commands(section: str, root: Path, monkeypatch, url: str = "") -> list[dict]:
    """The section's ```sh lines, in order, through the CLI: `export` lines set the environment; a URL in a
    command is replaced by the fake server's. Returns each command's --json summary."""
    monkeypatch.chdir(root)
    runner, summaries = CliRunner(), []
    lines = [line for b in SECTIONS[section] if b.lang == "sh" for line in b.text.splitlines() if line.strip()]
    assert lines, f"{section}: no ```sh block with the command that uses the example"
    for line in lines:
        if m := re.fullmatch(r"export ([A-Z_]+)=(\S+)", line):
            monkeypatch.setenv(m.group(1), m.group(2))
            continue
        argv = shlex.split(line)
        assert argv[0] == "stillroom", f"{section}: the test does not know how to run {line!r}"
        argv = [url if a.startswith("http") else a for a in argv[1:]]
        result = runner.invoke(app, [*argv, *([] if "--json" in argv else ["--json"])])
        assert result.exit_code == 0, f"{line} → {result.exit_code}\n{result.output}"
        summaries.append(json.loads(result.stdout))
    return summaries


def files_of(section: str) -> list[Block]:
    return [b for b in SECTIONS[section] if b.title and b.title != "stillroom.toml"]


def test_page_has_one_example_file_per_section_and_the_intro_lists_the_plugins():
    kinds = {"A provider": "python", "A task": "toml", "A scorer": "python", "An export format": "python"}
    assert [[b.lang for b in files_of(s)] for s in kinds] == [[lang] for lang in kinds.values()]
    intro = next(b for b in SECTIONS[""] if b.title == "stillroom.toml")
    plugins = validate_settings(tomllib.loads(intro.text)).project.plugins
    assert plugins == [files_of(s)[0].title for s, lang in kinds.items() if lang == "python"]


def test_provider_answers_through_the_router_and_distill(tmp_path, server, monkeypatch):
    project = project_from("A provider", tmp_path / "p")
    add_chunks(project, CHUNKS_EN + CHUNKS_ZH[:2])
    summary, = run_commands("A provider", project.root, monkeypatch, server.openai_url)
    assert summary["done"] == summary["planned"] == 4 and summary["chain"] == ["gateway"] and not summary["failed"]
    store = project.store()
    assert store.query("SELECT DISTINCT provider, task FROM items") == [("gateway", "qa")]
    assert {a for (a,) in store.query("SELECT DISTINCT key_alias FROM calls")} <= {"gateway#1", "gateway#2"}
    assert server.count(key="gw-key-1") + server.count(key="gw-key-2") == summary["calls"]
    keys = json.loads(CliRunner().invoke(app, ["keys", "--json"]).stdout)["keys"]
    assert [(k["provider"], k["alias"]) for k in keys] == [("gateway", "gateway#1"), ("gateway", "gateway#2")]
    # The router acts on the kinds the provider sorts failures into: a rejected key is disabled, a 429 cools one.
    server.then("gw-key-1", "auth")
    server.then("gw-key-2", "rate_limit", retry_after=0.05)
    calls = []
    distill = project.settings.distill
    distill.providers.backoff_s = 0.05
    router = Router(distill, ["gateway"], on_call=calls.append, on_event=lambda m: None, base_url=server.openai_url)
    done = router.complete(Request(messages=[{"role": "user", "content": "Say hello."}]))
    assert done.text.startswith("re: Say hello") and (done.provider, done.key_alias) == ("gateway", "gateway#2")
    assert sorted(c.status for c in calls) == ["auth", "ok", "rate_limited"]


def test_task_file_runs_with_distill_and_keeps_its_extra_field(tmp_path, server, monkeypatch):
    openai = {"base_url": server.openai_url, "model": "fake-model", "rpm": 0}
    project = project_from("A task", tmp_path / "p",
                           {"distill": {"provider": "openai", "providers": {"openai": openai}}})
    add_chunks(project, CHUNKS_EN + CHUNKS_ZH[:1])
    monkeypatch.setenv("OPENAI_API_KEYS", "sk-test-extending")
    summary, = run_commands("A task", project.root, monkeypatch)
    assert summary["done"] == summary["planned"] == 3 and summary["items"] == {"glossary": 3}
    rows = project.store().query("SELECT task, question, answer, meta FROM items")
    assert all(task == "glossary" and q and a and json.loads(meta)["term"] for task, q, a, meta in rows)


# Imported items, each with its own source (so its own document): distinct, grounded, two answers too short.
ITEMS = [
    ("Hotel costs in London are reimbursed up to GBP 180 per night with an itemised receipt.",
     "What is the nightly hotel limit for business trips to London?",
     "Hotel costs in London are reimbursed up to GBP 180 per night, with an itemised receipt."),
    ("Economy class is the default for flights shorter than 6 hours; business class needs a director's approval.",
     "Which class may staff book for a flight of under six hours?",
     "Economy class; business class on flights shorter than 6 hours needs a director's approval."),
    ("Expense claims must be filed within 30 days of the end of the trip.",
     "How long do employees have to file an expense claim after a trip?",
     "Expense claims must be filed within 30 days of the end of the trip."),
    ("Mileage for private cars used on company business is paid at GBP 0.45 per mile.",
     "What mileage rate applies to private cars used on company business?",
     "Private cars used on company business are paid GBP 0.45 per mile."),
    ("Client entertainment above GBP 250 per event requires prior written approval from finance.",
     "When does client entertainment need approval from finance beforehand?",
     "Entertainment above GBP 250 per event needs prior written approval from finance."),
    ("Taxi fares are reimbursed when no public transport runs or when the traveller carries heavy equipment.",
     "When are taxi fares reimbursed on a business trip?",
     "Taxi fares are reimbursed when no public transport runs or when you carry heavy equipment."),
    ("A lost receipt can be replaced by a signed declaration, at most twice a year.",
     "How often per year may a signed declaration replace a lost receipt?",
     "Twice."),
    ("Laptops bought for work remain company property and must be returned when an employee leaves.",
     "Who owns a laptop that was bought for work?",
     "The company owns it, and it must be returned when the employee leaves."),
    ("Visa fees for business travel are paid by the company and booked through the travel desk.",
     "Who pays visa fees for business travel?",
     "The company pays visa fees for business travel; book them through the travel desk."),
    ("The per diem for meals abroad is EUR 40 per day, paid without receipts.",
     "What is the meal per diem when travelling abroad?",
     "EUR 40."),
]


def imported(project: Project) -> None:
    path = project.root / "items.jsonl"
    path.write_text("".join(json.dumps({"question": q, "answer": a, "source": s}) + "\n" for s, q, a in ITEMS),
                    encoding="utf-8")
    result = CliRunner().invoke(app, ["import", str(path), "--project", str(project.root)])
    assert result.exit_code == 0, result.output


def test_scorer_value_is_in_items_and_in_the_rubric(tmp_path, monkeypatch):
    project = project_from("A scorer", tmp_path / "p")
    imported(project)
    curated, listed = run_commands("A scorer", project.root, monkeypatch)
    assert curated["scored"]["scored"] == len(ITEMS) and curated["scored"]["hard_fail"] == 0
    rows = listed["items"]
    assert sorted(r["answer"] for r in rows) == ["EUR 40.", "Twice."]
    for r in rows:
        mine = r["scores"]["answer_length"]
        assert mine["value"] == pytest.approx(len(r["answer"]) / 12)
        assert mine["evidence"] == {"chars": len(r["answer"]), "problem": "shorter than 12 characters"}
        assert r["scores"]["overall"]["evidence"]["weights"]["answer_length"] == 10.0


def test_export_format_writes_a_snapshot_that_verify_accepts(tmp_path, monkeypatch):
    project = project_from("An export format", tmp_path / "p")
    imported(project)
    for argv in (["curate"], ["decide", "--approve", "--where", "true"]):
        result = CliRunner().invoke(app, [*argv, "--project", str(project.root)])
        assert result.exit_code == 0, result.output
    exported, verified = run_commands("An export format", project.root, monkeypatch)
    assert exported["format"] == "chatml" and verified["ok"] and verified["kind"] == "snapshot"
    records = [json.loads(line) for split in ("train", "val", "test")
               for line in (project.root / "snapshots/v1" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(records) == len(ITEMS)
    for r in records:
        assert r["task"] == "qa" and r["text"].startswith("<|im_start|>user\n") and r["text"].endswith("<|im_end|>\n")


def test_a_missing_plugin_file_names_the_setting_and_the_path(tmp_path):
    init_project(tmp_path / "p")
    (tmp_path / "p" / "stillroom.toml").write_text('[project]\nplugins = ["plugins/nope.py"]\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["status", "--project", str(tmp_path / "p")])
    assert result.exit_code == 2
    assert "[project] plugins names 'plugins/nope.py', which is not a .py file" in result.stderr
