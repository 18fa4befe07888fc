"""What a run writes besides items' text: call rows, key states, and the ledger that always balances."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from stillroom.distill.plan import Unit
from stillroom.distill.router import CallRecord
from stillroom.distill.tasks import ItemDraft
from stillroom.distill.validate import Attempt
from stillroom.errors import StillroomError
from stillroom.ids import content_id
from stillroom.store import Store


@dataclass
class Result:
    unit: Unit
    status: str  # done, failed, pending (not run: stopped or every key dead)
    items: list[ItemDraft] = field(default_factory=list)
    reason: str | None = None
    error: str = ""
    calls: list[CallRecord] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    provider: str = ""
    model: str = ""
    stop: StillroomError | None = None
    crash: BaseException | None = None


def call_rows(run_id: str, r: Result) -> list[tuple]:
    """Each HTTP attempt; a reply that failed validation keeps its raw text and why."""
    attempts = iter(r.attempts)
    rows = []
    for c in r.calls:
        a = next(attempts, None) if c.status == "ok" else None
        if a is not None and a.status != "ok":
            rows.append(call_row(run_id, c, a.status, a.completion.text, a.error))
        else:
            rows.append(call_row(run_id, c, c.status, None))
    return rows


def call_row(run_id: str, c: CallRecord, status: str, raw: str | None, error: str = "") -> tuple:
    error_class = c.error_class or (error.splitlines()[0][:200] if error else None)
    return (c.unit_id, run_id, c.provider, c.key_alias, c.model, c.latency_ms, c.tokens_in, c.tokens_out,
            status, error_class, raw)


def item_row(r: Result, draft: ItemDraft) -> tuple:
    msgs = draft.messages
    question = next((m["content"] for m in msgs if m["role"] == "user"), None)
    answer = next((m["content"] for m in reversed(msgs) if m["role"] == "assistant"), None)
    item_id = content_id("itm", {"unit": r.unit.id, "messages": msgs})
    return (item_id, r.unit.id, r.unit.chunk.id, r.unit.task, question, answer, json.dumps(msgs, ensure_ascii=False),
            r.unit.prompt_hash, r.provider, r.model, json.dumps(draft.meta, ensure_ascii=False))


def save_key_states(con: Any, rows: list[dict]) -> None:
    if not rows:
        return
    con.executemany(
        "INSERT INTO key_state (provider, alias, state, cooling_until, requests, rate_limited, tokens, last_error, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, current_timestamp) ON CONFLICT (provider, alias) DO UPDATE SET "
        "state = excluded.state, cooling_until = excluded.cooling_until, requests = excluded.requests, "
        "rate_limited = excluded.rate_limited, tokens = excluded.tokens, last_error = excluded.last_error, "
        "updated_at = excluded.updated_at",
        [(r["provider"], r["alias"], r["state"], r["cooling_until"], r["requests"], r["rate_limited"], r["tokens"],
          r["last_error"]) for r in rows])


def ledger(store: Store, run_id: str) -> dict:
    """planned = done + failed (by reason) + pending, and items per task, for the units a run planned.
    `balanced` also checks what the counts alone cannot: every done unit wrote items and no item
    belongs to a unit that is not done."""
    rows = store.query("SELECT status, coalesce(fail_reason, ''), count(*) FROM work_units WHERE run_id = ? "
                       "GROUP BY ALL", [run_id])
    by = Counter({(s, r): n for s, r, n in rows})
    failed = {r: n for (s, r), n in by.items() if s == "failed"}
    items = dict(store.query("SELECT i.task, count(*) FROM items i JOIN work_units w ON w.id = i.unit_id "
                             "WHERE w.run_id = ? GROUP BY ALL ORDER BY 1", [run_id]))
    done_without_items, items_of_unfinished = store.query(
        "SELECT count(*) FILTER (WHERE w.status = 'done' AND i.n IS NULL), "
        "coalesce(sum(i.n) FILTER (WHERE w.status <> 'done'), 0) FROM work_units w "
        "LEFT JOIN (SELECT unit_id, count(*) AS n FROM items GROUP BY unit_id) i ON i.unit_id = w.id "
        "WHERE w.run_id = ?", [run_id])[0]
    planned = sum(by.values())
    done = sum(n for (s, _), n in by.items() if s == "done")
    pending = sum(n for (s, _), n in by.items() if s == "pending")
    return {"planned": planned, "done": done, "failed": failed, "pending": pending, "items": items,
            "balanced": planned == done + sum(failed.values()) + pending
            and done_without_items == 0 and items_of_unfinished == 0}


def mix_report(store: Store, run_id: str, target: dict[str, float]) -> dict:
    rows = dict(store.query("SELECT task, count(*) FROM work_units WHERE run_id = ? AND status = 'done' GROUP BY ALL",
                            [run_id]))
    total = sum(rows.values()) or 1
    return {t: {"target": round(share, 3), "reached": round(rows.get(t, 0) / total, 3)} for t, share in target.items()}


def last_run(store: Store) -> dict | None:
    """The newest distill run with its ledger, for `stillroom status`."""
    rows = store.query("SELECT id, status, started_at, finished_at FROM runs WHERE stage = 'distill' "
                       "ORDER BY started_at DESC LIMIT 1")
    if not rows:
        return None
    run_id, status, started, finished = rows[0]
    return {"run_id": run_id, "status": status, "started_at": started, "finished_at": finished, **ledger(store, run_id)}
