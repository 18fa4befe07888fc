"""Shared setup for the curate flow tests: documents, chunks, items and score rows inserted with plain SQL."""

from __future__ import annotations

import json

from stillroom.ids import content_id
from tests.test_curate_scoring_helpers import add_chunk, new_project  # noqa: F401 (new_project is used by the flow tests)


def add_doc(store, doc: str, text: str = "员工出差住宿标准为每晚500元。", seq: int = 0) -> str:
    return add_chunk(store, text, doc=doc, seq=seq, heading_path="第二章")


def add_items(store, chunk_id: str | None, n: int, task: str = "qa", prefix: str = "q", answer: str = "每晚500元。",
              meta: dict | None = None) -> list[str]:
    ids = []
    with store.transaction() as con:
        for i in range(n):
            question = f"{prefix} {i}: 出差住宿标准是多少？"
            messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
            item_id = content_id("itm", {"m": messages, "chunk": chunk_id, "task": task})
            ids.append(item_id)
            con.execute("INSERT INTO items (id, chunk_id, task, origin, question, answer, messages, meta, provider, model)"
                        " VALUES (?, ?, ?, 'distill', ?, ?, ?, ?, 'openai', 'gpt-test')",
                        [item_id, chunk_id, task, question, answer, json.dumps(messages, ensure_ascii=False),
                         json.dumps(meta or {}, ensure_ascii=False)])
    return ids


def set_score(store, item_id: str | list[str], overall: float, hard_fail: bool = False, revision: int = 0,
              figures: int = 0, extra: dict[str, tuple[float, bool]] | None = None) -> None:
    """Score rows as the scoring stage would write them (overall + numeric_fidelity + any `extra`), one transaction."""
    rows = {"overall": (overall, hard_fail, {}),
            "numeric_fidelity": (0.0 if hard_fail else 1.0, hard_fail,
                                 {"figures": [{"text": "500元", "span": [2, 6], "source_span": [10, 14]}] * figures})}
    for name, (v, h) in (extra or {}).items():
        rows[name] = (v, h, {})
    ids = [item_id] if isinstance(item_id, str) else item_id
    if not ids:
        return
    with store.transaction() as con:
        con.executemany("DELETE FROM scores WHERE item_id = ? AND revision = ?", [[i, revision] for i in ids])
        con.executemany("INSERT INTO scores (item_id, revision, scorer, scorer_version, value, hard_fail, evidence) "
                        "VALUES (?, ?, ?, 1, ?, ?, ?)",
                        [[i, revision, name, v, h, json.dumps(ev)] for i in ids for name, (v, h, ev) in rows.items()])


def queue(store, item_ids: list[str], reason: str = "low_score") -> None:
    with store.transaction() as con:
        for k, item_id in enumerate(item_ids):
            con.execute("INSERT INTO review_queue (item_id, priority, reason) VALUES (?, ?, ?)",
                        [item_id, float(len(item_ids) - k), reason])


def status_of(store, settings, item_id: str) -> str:
    from stillroom.curate.state import state_sql

    return store.scalar(f"SELECT status FROM ({state_sql(settings.curate.review_below)}) WHERE id = ?", [item_id])
