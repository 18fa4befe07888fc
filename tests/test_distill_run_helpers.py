"""Shared helpers for the distill runner and task tests: a project with chunks, and a scripted provider.

`ScriptedProvider` is a real `Provider` subclass registered under "scripted" (only tests import this
module), so the runner and router are exercised as they are in production, minus the network.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Callable

from stillroom.distill.provider import PROVIDERS, Completion, Key, Provider, Request
from stillroom.ids import content_id
from stillroom.settings.distill import ProviderSettings
from stillroom.project import Project, init_project

CHUNKS_ZH = [
    "出差人员住宿费实行限额标准。一般工作人员在直辖市出差，每人每天住宿费不超过500元。",
    "差旅费报销应当真实、合法，并附原始票据。",
    "出差人员应在出差结束后15个工作日内办理报销。",
    "本办法由财务部负责解释。",
]
CHUNKS_EN = [
    "Staff travelling to London may claim up to GBP 180 per night.",
    "Claims must be filed with original receipts.",
]


def make_project(root: Path, texts: list[str], **distill: str) -> Project:
    """A project whose [distill] keys are set from `distill` (TOML values as text)."""
    project, _ = init_project(root)
    set_distill(project, **distill)
    add_chunks(project, texts)
    return Project(project.root)


def set_distill(project: Project, **values: str) -> None:
    text = project.config_path.read_text(encoding="utf-8")
    head, _, rest = text.partition("[distill]\n")
    section, nl, tail = rest.partition("\n[")
    lines = section.splitlines()
    for key, value in values.items():
        lines = [f"{key} = {value}" if line.startswith(f"{key} = ") else line for line in lines]
    project.config_path.write_text(head + "[distill]\n" + "\n".join(lines) + nl + tail, encoding="utf-8")


def add_chunks(project: Project, texts: list[str], file_name: str = "policy.md") -> list[str]:
    doc = content_id("doc", {"file": file_name})
    ids = []
    with project.store().transaction() as con:
        con.execute("INSERT INTO documents (id, file_name, format, size_bytes, n_pages, normalized, dropped_lines) "
                    "VALUES (?, ?, 'md', 100, 1, false, 0) ON CONFLICT DO NOTHING", [doc, file_name])
        for seq, text in enumerate(texts):
            cid = content_id("chk", {"doc": doc, "seq": seq, "text": text})
            ids.append(cid)
            con.execute("INSERT INTO chunks (id, document_id, seq, page_start, page_end, char_start, char_end, "
                        "heading_path, text, n_tokens, tokenizer, has_figures) VALUES (?, ?, ?, 1, 1, 0, ?, '第一章', ?, ?, "
                        "'test', ?)", [cid, doc, seq, len(text), text, len(text), bool(re.search(r"\d", text))])
    return ids


def chunk_of(messages: list[dict]) -> str:
    """The chunk: the last rendered user turn (not a re-ask) after its Document/Section header."""
    last = next(m["content"] for m in reversed(messages)
                if m["role"] == "user" and not m["content"].startswith("Your reply could not be used"))
    return last.split("\n\n", 1)[-1]


def good_reply(task: str, chunk: str) -> str:
    """A valid reply for a built-in task, grounded in the chunk (its first figure copied exactly)."""
    figure = next(iter(re.findall(r"\d+", chunk)), "")
    question = f"What does this say: {chunk[:20]}?"
    replies = {
        "qa": {"question": question, "answer": chunk},
        "numeric_qa": {"question": question, "answer": f"{chunk} ({figure})",
                       "figures": [{"text": figure, "meaning": "a figure"}]},
        "multiturn": {"pattern": "direct", "turns": [{"role": "user", "content": question},
                                                      {"role": "assistant", "content": chunk}]},
        "template": {"question": question, "answer": "### 结论\nyes\n### 推导\nbecause\n### 检查\nok",
                     "out_of_scope_question": "Can I claim gym fees?", "refusal": "Our documents do not cover that."},
    }
    return json.dumps(replies[task], ensure_ascii=False)


TITLES = {"QAReply": "qa", "NumericReply": "numeric_qa", "MultiturnReply": "multiturn", "TemplateReply": "template"}


def fake_reply(req) -> str:
    """For `FakeLLMServer(reply=...)`: the task is known from the JSON Schema's title."""
    return good_reply(TITLES[req.json_schema["title"]], chunk_of(req.messages))


class ScriptedSettings(ProviderSettings):
    rpm: int = 0  # no client-side rate limit unless a test sets one


class ScriptedProvider(Provider):
    """Replies with `ScriptedProvider.script(request)`; counts calls per chunk so tests see redone work."""

    name = "scripted"
    key_env_vars = ("SCRIPTED_API_KEYS",)
    Settings = ScriptedSettings
    script: Callable[[Request], str | Completion] = staticmethod(lambda r: good_reply(r.schema_name, chunk_of(r.messages)))
    calls: list[str] = []
    lock = threading.Lock()

    def call(self, request: Request, key: Key) -> Completion:
        with self.lock:
            ScriptedProvider.calls.append(chunk_of(request.messages))
        out = type(self).script(request)
        if isinstance(out, Completion):
            return out
        return Completion(text=out, finish_reason="stop", tokens_in=100, tokens_out=20, model="scripted-1")


def register_scripted(monkeypatch) -> None:
    """Registered for one test only: other tests see exactly the built-in providers."""
    monkeypatch.setitem(PROVIDERS._items, "scripted", ScriptedProvider)


def set_provider(project: Project, name: str, pool: dict | None = None, **values: object) -> None:
    """Give one provider its own [distill.providers.NAME] table (the others keep their defaults);
    `pool` sets [distill.providers] keys such as backoff_s."""
    tables = {"distill.providers": dict(pool or {}), f"distill.providers.{name}": dict(values)}
    out, table = [], None
    for line in project.config_path.read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            table = line.strip("[] ")
            out.append(line)
            out += [f"{k} = {json.dumps(v)}" for k, v in tables.get(table, {}).items()]
            continue
        key = line.split("=", 1)[0].strip()
        if table in tables and key in tables[table] and not line.startswith("#"):
            continue  # replaced by the value written under the table's header
        out.append(line)
    project.config_path.write_text("\n".join(out) + "\n", encoding="utf-8")


def many_chunks(n: int) -> list[str]:
    """`n` distinct chunks, half with figures."""
    return [f"第{i}条 差旅费第{i}项规定：限额为{100 + i}元。" if i % 2 else f"Rule {chr(65 + i % 26)}{i // 26}: receipts are required."
            for i in range(n)]
