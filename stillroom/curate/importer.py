"""`stillroom import`: bring in datasets users already have, so they are scored, reviewed and exported too.

Recognised records (JSON Lines, or a JSON list): Alpaca (instruction/input/output, optional system and
history), ShareGPT (conversations or messages with from/value), OpenAI chat (messages with
role/content) and plain question/answer. An optional `source` or `context` becomes the item's own
document and chunk; `id` is kept as `external_id`; every other field is kept in the item's meta.
A record that cannot be read is reported by line and skipped; nothing else is lost.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

from stillroom.curate.state import utcnow
from stillroom.errors import UsageError
from stillroom.ids import content_id
from stillroom.store import insert_columns

ROLE = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
        "chatgpt": "assistant", "bot": "assistant", "system": "system"}
CONSUMED = {"instruction", "input", "output", "system", "history", "conversations", "messages", "question", "answer",
            "source", "context", "id", "task"}


class BadRecord(ValueError):
    """A record in an import file that is not one of the recognised shapes."""


def to_messages(rec: dict) -> list[dict]:
    """The record's turns as [{role, content}], whatever the dataset format."""
    if "conversations" in rec or "messages" in rec:
        turns = rec.get("conversations") if "conversations" in rec else rec.get("messages")
        if not isinstance(turns, list):
            raise BadRecord("conversations/messages is not a list")
        msgs = []
        for t in turns:
            if not isinstance(t, dict):
                raise BadRecord("a turn is not an object")
            role, content = t.get("role", t.get("from")), t.get("content", t.get("value"))
            if role not in ROLE or not isinstance(content, str):
                raise BadRecord(f"a turn has role {role!r}; use role/content or from/value "
                                f"({', '.join(sorted(ROLE))})")
            msgs.append({"role": ROLE[role], "content": content})
    elif "instruction" in rec and "output" in rec:
        prompt = rec["instruction"] + (f"\n\n{rec['input']}" if rec.get("input") else "")
        msgs = [{"role": "system", "content": rec["system"]}] if rec.get("system") else []
        for q, a in rec.get("history") or []:
            msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        msgs += [{"role": "user", "content": prompt}, {"role": "assistant", "content": rec["output"]}]
    elif "question" in rec and "answer" in rec:
        msgs = [{"role": "user", "content": rec["question"]}, {"role": "assistant", "content": rec["answer"]}]
    else:
        raise BadRecord("not Alpaca (instruction/output), ShareGPT (conversations), OpenAI (messages) or "
                        "question/answer: keys " + ", ".join(sorted(rec)[:8]))
    if not all(isinstance(m["content"], str) for m in msgs):
        raise BadRecord("a turn's text is not a string")
    if not any(m["role"] == "user" and m["content"].strip() for m in msgs):
        raise BadRecord("no question (user turn)")
    if not any(m["role"] == "assistant" and m["content"].strip() for m in msgs):
        raise BadRecord("no answer (assistant turn)")
    return msgs


def records(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """(line or record number, parsed record, error) for each record of a JSON Lines or JSON file."""
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None  # often JSON Lines under a .json name: read it line by line below
        if isinstance(data, dict):
            lists = [v for v in data.values() if isinstance(v, list)]
            data = lists[0] if len(lists) == 1 else [data]
        if isinstance(data, list):
            yield from ((i, rec, None) for i, rec in enumerate(data, 1))
            return
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield n, json.loads(line), None
            except json.JSONDecodeError as e:
                yield n, None, f"not valid JSON ({e.msg} at column {e.colno})"


def import_files(store: Any, paths: list[Path]) -> dict:
    """Import every file; returns {files, imported, already_present, bad: [{file, line, error}]}."""
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise UsageError(f"not found: {', '.join(missing)} — pass JSON or JSONL files")
    cols: dict[str, Any] = {t: {} for t in ("documents", "chunks", "items")} | {"seen_docs": set()}
    bad, seen = [], 0
    for path in map(Path, paths):
        for line, rec, error in records(path):
            seen += 1
            try:
                if error:
                    raise BadRecord(error)
                if not isinstance(rec, dict):
                    raise BadRecord("not a JSON object")
                _add(cols, path, line, rec)
            except BadRecord as e:
                bad.append({"file": str(path), "line": line, "error": str(e)})
    with store.transaction() as con:
        before = con.execute("SELECT count(*) FROM items").fetchone()[0]
        for table in ("documents", "chunks", "items"):
            if cols[table]:
                insert_columns(con, table, cols[table])
        imported = con.execute("SELECT count(*) FROM items").fetchone()[0] - before
        run_id = content_id("run", {"stage": "import", "at": utcnow().isoformat(), "pid": os.getpid()}, 16)
        summary = {"files": [str(p) for p in paths], "records": seen, "imported": imported,
                   "already_present": seen - len(bad) - imported, "bad": bad}
        con.execute("INSERT INTO runs (id, stage, status, started_at, finished_at, pid, args, summary) "
                    "VALUES (?, 'import', 'done', ?, ?, ?, ?, ?)",
                    [run_id, utcnow(), utcnow(), os.getpid(), json.dumps({"paths": summary["files"]}),
                     json.dumps({k: v for k, v in summary.items() if k != "bad"} | {"bad": len(bad)})])
        for b in bad:
            con.execute("INSERT INTO run_events (run_id, level, subject, message) VALUES (?, 'error', ?, ?)",
                        [run_id, f"{b['file']}:{b['line']}", b["error"]])
    return summary


def _add(cols: dict, path: Path, line: int, rec: dict) -> None:
    msgs = to_messages(rec)
    source = rec.get("source", rec.get("context"))
    if source is not None and not isinstance(source, str):
        raise BadRecord("source/context is not text")
    chunk_id = _add_source(cols, path, line, source) if source and source.strip() else None
    user = [m["content"] for m in msgs if m["role"] == "user"]
    task = rec["task"] if isinstance(rec.get("task"), str) else ("multiturn" if len(user) > 1 else "qa")
    meta = {k: v for k, v in rec.items() if k not in CONSUMED}
    row = {"id": content_id("itm", {"messages": msgs, "source": source, "task": task}), "chunk_id": chunk_id,
           "task": task, "origin": "import", "external_id": None if rec.get("id") is None else str(rec["id"]),
           "question": user[0], "answer": next(m["content"] for m in reversed(msgs) if m["role"] == "assistant"),
           "messages": json.dumps(msgs, ensure_ascii=False), "meta": json.dumps(meta, ensure_ascii=False)}
    for k, v in row.items():
        cols["items"].setdefault(k, []).append(v)


def _add_source(cols: dict, path: Path, line: int, source: str) -> str:
    """The source text becomes a document of its own (so splits by document keep it in one split) and one chunk."""
    doc_id = content_id("doc", {"import_source": source})
    chunk_id = content_id("chk", {"doc": doc_id, "text": source})
    if doc_id in cols["seen_docs"]:
        return chunk_id
    cols["seen_docs"].add(doc_id)
    doc = {"id": doc_id, "file_name": f"{path.name}:{line}", "format": "import", "size_bytes": len(source.encode()),
           "n_pages": 1, "normalized": False, "dropped_lines": 0}
    chunk = {"id": chunk_id, "document_id": doc_id, "seq": 0, "page_start": 1, "page_end": 1, "char_start": 0,
             "char_end": len(source), "heading_path": "", "text": source, "n_tokens": max(1, len(source) // 3),
             "tokenizer": "estimate", "has_figures": any(ch.isdigit() for ch in source)}
    for table, row in (("documents", doc), ("chunks", chunk)):
        for k, v in row.items():
            cols[table].setdefault(k, []).append(v)
    return chunk_id
