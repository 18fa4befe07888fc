"""Shared setup for the curate scoring and dedup tests: documents, chunks and items inserted with plain SQL."""

from __future__ import annotations

import json
from pathlib import Path

from stillroom.ids import content_id
from stillroom.project import init_project

SOURCE_ZH = ("第三条 员工出差住宿费报销上限为每晚500元，全年累计不超过3万元。本办法自2024年3月1日起施行。"
             "报销须在出差结束后十五日内提交，逾期的扣减5%。")
SOURCE_EN = ("Section 4. The company reimburses up to $15 million per year in total. Claims must be filed within "
             "30 days, and late claims are reduced by 65 percent. The policy takes effect on March 1, 2024.")


def new_project(root: Path):
    project, _ = init_project(root)
    return project, project.store()


def add_chunk(store, text: str, doc: str = "doc_a", seq: int = 0, heading_path: str = "") -> str:
    chunk_id = content_id("chk", {"doc": doc, "seq": seq, "text": text})
    with store.transaction() as con:
        con.execute("INSERT INTO documents (id, file_name, format, size_bytes, n_pages, normalized, dropped_lines) "
                    "SELECT ?, ?, 'txt', 100, 1, false, 0 WHERE NOT EXISTS (SELECT 1 FROM documents WHERE id = ?)",
                    [doc, f"{doc}.txt", doc])
        con.execute("INSERT INTO chunks (id, document_id, seq, page_start, page_end, char_start, char_end, heading_path,"
                    " text, n_tokens, tokenizer, has_figures) VALUES (?, ?, ?, 1, 1, 0, ?, ?, ?, 50, 'test', true)",
                    [chunk_id, doc, seq, len(text), heading_path, text])
    return chunk_id


def add_item(store, question: str, answer: str, chunk_id: str | None, task: str = "qa", meta: dict | None = None,
             messages: list | None = None, salt: str = "") -> str:
    messages = messages or [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    item_id = content_id("itm", {"m": messages, "chunk": chunk_id, "meta": meta, "salt": salt})
    with store.transaction() as con:
        con.execute("INSERT INTO items (id, chunk_id, task, origin, question, answer, messages, meta) "
                    "VALUES (?, ?, ?, 'distill', ?, ?, ?, ?)",
                    [item_id, chunk_id, task, question, answer, json.dumps(messages, ensure_ascii=False),
                     json.dumps(meta or {}, ensure_ascii=False)])
    return item_id


def scores_of(store, item_id: str, revision: int | None = None) -> dict[str, dict]:
    rev = "(SELECT max(revision) FROM scores WHERE item_id = ?)" if revision is None else "?"
    rows = store.query_dicts(f"SELECT scorer, value, hard_fail, evidence FROM scores WHERE item_id = ? "
                             f"AND revision = {rev}", [item_id, item_id if revision is None else revision])
    return {r["scorer"]: {**r, "evidence": json.loads(r["evidence"])} for r in rows}
