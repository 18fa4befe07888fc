"""Shared setup for the review UI tests: a project with queued items, users, and logged-in clients."""

from __future__ import annotations

import json
import re
from pathlib import Path

from stillroom.ids import content_id
from stillroom.project import init_project
from stillroom.review_ui.users import add_user

SOURCE = "第二章 差旅费\n员工出差住宿标准为每晚500元，交通补贴每天80元。报销须在出差结束后15日内提交。"


DOC_ID, CHUNK_ID = "doc-" + "0" * 8, "chk-" + "0" * 8


def seed_project(root: Path, n_items: int = 5, *, text: str | None = None):
    """A project with one document, one chunk and `n_items` queued qa items (priority falls with index)."""
    project, _ = init_project(root)
    with project.store().transaction() as con:
        con.execute("INSERT INTO documents (id, file_name, format, size_bytes, n_pages, normalized, dropped_lines) "
                    "VALUES (?, '差旅费管理办法.pdf', 'pdf', 1000, 3, false, 0)", [DOC_ID])
        con.execute("INSERT INTO chunks (id, document_id, seq, page_start, page_end, char_start, char_end, heading_path,"
                    " text, n_tokens, tokenizer, has_figures) VALUES (?, ?, 0, 2, 2, 0, ?, '第二章 > 差旅费', ?, 40,"
                    " 'test', true)", [CHUNK_ID, DOC_ID, len(SOURCE), SOURCE])
    ids = [enqueue_item(project, float(n_items - i), f"问题 {i}: 出差住宿标准是多少？",
                        text if (text and i == 0) else "每晚500元。") for i in range(n_items)]
    return project, ids


def enqueue_item(project, priority: float, question: str, answer: str = "每晚500元。") -> str:
    """One qa item from the seeded chunk, queued for review with `priority`."""
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    item_id = content_id("itm", {"messages": messages})
    with project.store().transaction() as con:
        con.execute("INSERT INTO items (id, chunk_id, task, origin, question, answer, messages, provider, model)"
                    " VALUES (?, ?, 'qa', 'distill', ?, ?, ?, 'openai', 'gpt-test')",
                    [item_id, CHUNK_ID, question, answer, json.dumps(messages, ensure_ascii=False)])
        con.execute("INSERT INTO review_queue (item_id, priority, reason) VALUES (?, ?, 'low_score')",
                    [item_id, priority])
    return item_id


def add_users(project) -> dict[str, str]:
    store = project.store()
    return {"admin": add_user(store, "admin", admin=True), "ann": add_user(store, "ann"),
            "bob": add_user(store, "bob")}


def login(client, name: str, password: str):
    """Log a TestClient in through the real form; returns the session's CSRF token."""
    page = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = client.post("/login", data={"name": name, "password": password, "csrf": token}, follow_redirects=False)
    assert r.status_code == 303, r.text
    home = client.get("/review")
    return re.search(r'name="csrf-token" content="([^"]+)"', home.text).group(1)
