"""The decisions API the review UI (and `stillroom decide`) calls.

Leases keep two reviewers off the same item; a lease runs out by itself, so a closed browser
never strands an item. Decisions are appended, never updated: an undo is a new row that withdraws
an earlier one, an edit is a new revision of the item, re-scored at once. Every change is also
written to `audit_log`. Taking the next item (`next_item`, `decide_and_next`, `prefetch`) lives in
`stillroom.curate.queue` and is re-exported here; the appends every call shares, in
`stillroom.curate.review_log`.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from stillroom.curate.queue import decide_and_next, next_item, prefetch, release
from stillroom.curate.review_log import DECISIONS, append, audit, check_decision, check_lease, item_state, record
from stillroom.curate.review_order import order_of, reviews_needed
from stillroom.curate.state import CURRENT_REVISION, EFFECTIVE, utcnow
from stillroom.errors import UsageError
from stillroom.ids import content_id

# part of this API: the review UI and docs/curate.md name them as `reviews.…`
__all__ = ["DECISIONS", "decide", "decide_and_next", "decide_many", "edit", "error_rate", "gates", "item_view",
           "next_item", "prefetch", "release", "reviews_needed", "undo"]


def decide(store: Any, item_id: str, reviewer: str, decision: str, reason_code: str | None = None,
           note: str | None = None) -> str:
    """Record approve or reject (a reject names its reason code). Returns the decision's id.

    Refused, with nothing written, while another reviewer holds the item's lease.
    """
    check_decision(decision, reason_code)
    now = utcnow()
    with store.transaction() as con:
        revision, seq = item_state(con, item_id)
        return record(con, order_of(store), item_id, reviewer, decision, reason_code, note, revision, seq, now)


def decide_many(store: Any, item_ids: list[str], reviewer: str, decision: str, reason_code: str | None = None,
                note: str | None = None) -> int:
    """A bulk decision (an admin from the command line): one transaction, audited like any other."""
    check_decision(decision, reason_code)
    import numpy as np

    ids = sorted(set(item_ids))
    if not ids:
        return 0
    now = utcnow()
    with store.transaction() as con:
        start = con.execute("SELECT coalesce(max(seq), 0) FROM reviews").fetchall()[0][0]
        con.register("bulk_ids", {"item_id": np.array(ids, dtype=object)})
        try:
            con.execute(f"""
                WITH cur AS ({CURRENT_REVISION}),
                numbered AS (SELECT b.item_id, row_number() OVER (ORDER BY b.item_id) AS n FROM bulk_ids b)
                INSERT INTO reviews (id, item_id, revision, reviewer, decision, reason_code, note, seq, created_at)
                SELECT 'dec_' || substr(sha256(n.item_id || $who || $start::VARCHAR || n.n::VARCHAR), 1, 32),
                       n.item_id, coalesce(cur.revision, 0), $who, $decision, $reason, $note, $start + n.n, $now
                FROM numbered n LEFT JOIN cur ON cur.item_id = n.item_id""",
                {"who": reviewer, "start": start, "decision": decision, "reason": reason_code, "note": note,
                 "now": now})
            con.execute("UPDATE review_queue SET lease_owner = NULL, lease_expires = NULL "
                        "WHERE item_id IN (SELECT item_id FROM bulk_ids)")
        finally:
            con.unregister("bulk_ids")
        audit(con, reviewer, f"bulk_{decision}", None, {"items": len(ids), "reason_code": reason_code,
                                                        "note": note, "first_seq": start + 1})
    order_of(store).forget()
    return len(ids)


def edit(store: Any, item_id: str, reviewer: str, *, question: str | None = None, answer: str | None = None,
         messages: list[dict] | None = None, settings: Any = None) -> int:
    """Save a new revision of the item (the original is never changed) and score it at once. Returns its number."""
    if question is None and answer is None and messages is None:
        raise UsageError("edit needs a new question, answer or messages")
    with store.transaction() as con:
        revision, seq = item_state(con, item_id)
        check_lease(con, item_id, reviewer, utcnow())
        current = con.execute(
            "SELECT coalesce(r.messages, i.messages) FROM items i LEFT JOIN item_revisions r "
            "ON r.item_id = i.id AND r.revision = ? WHERE i.id = ?", [revision, item_id]).fetchone()[0]
        msgs = messages if messages is not None else _replace_turns(json.loads(current), question, answer)
        q = next((m["content"] for m in msgs if m.get("role") == "user"), None)
        a = next((m["content"] for m in reversed(msgs) if m.get("role") == "assistant"), None)
        new = revision + 1
        con.execute("INSERT INTO item_revisions (id, item_id, revision, question, answer, messages, author, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [content_id("rev", {"item": item_id, "revision": new}), item_id, new, q, a,
                     json.dumps(msgs, ensure_ascii=False), reviewer, utcnow()])
        review_id = append(con, item_id, new, reviewer, "edit", None, None, seq=seq)
        audit(con, reviewer, "edit", item_id, {"review_id": review_id, "revision": new, "from_revision": revision})
    from stillroom.curate import scoring

    order_of(store).forget()  # the new revision's scores change what the item's view shows
    scoring.score_items(store, settings or _project_settings(store), [item_id])
    return new


def undo(store: Any, reviewer: str, lease_s: float = 300) -> str | None:
    """Withdraw this reviewer's last standing approve/reject; the item comes back to them. Returns its id.

    The item is leased to them again unless another reviewer holds it now (a double review in progress).
    """
    now = utcnow()
    with store.transaction() as con:
        row = con.execute(f"""WITH eff AS ({EFFECTIVE})
            SELECT id, item_id FROM eff WHERE reviewer = ? ORDER BY seq DESC LIMIT 1""", [reviewer]).fetchone()
        if row is None:
            return None
        review_id, item_id = row
        revision, seq = item_state(con, item_id)
        undo_id = append(con, item_id, revision, reviewer, "undo", None, None, undoes=review_id, seq=seq)
        con.execute("UPDATE review_queue SET lease_owner = NULL, lease_expires = NULL WHERE lease_owner = ?",
                    [reviewer])
        expires = now + timedelta(seconds=lease_s)
        granted = con.execute("UPDATE review_queue SET lease_owner = $me, lease_expires = $expires WHERE item_id = $id "
                              "AND (lease_owner IS NULL OR lease_expires <= $now)",
                              {"me": reviewer, "expires": expires, "id": item_id, "now": now}).fetchone()[0]
        audit(con, reviewer, "undo", item_id, {"review_id": undo_id, "undoes": review_id})
        standing = con.execute(f"WITH eff AS ({EFFECTIVE}) SELECT DISTINCT reviewer FROM eff WHERE item_id = ?",
                               [item_id]).fetchall()
        order = order_of(store)
        if (prev := order.held.get(reviewer)) is not None:
            order.leased(prev.item_id, None, None)
        if granted:
            order.leased(item_id, reviewer, expires)
        order.undone(item_id, {r[0] for r in standing}, seq)
    return item_id


def item_view(store: Any, item_id: str) -> dict:
    """Everything a reviewer needs to judge one item, read afresh: see `stillroom.curate.view`."""
    from stillroom.curate.view import build_view

    return build_view(store, item_id)


def gates(store: Any) -> list[dict] | None:
    """The gates of the latest `stillroom curate` run (None before the first)."""
    from stillroom.curate.gates import latest_gates

    return latest_gates(store)


def error_rate(store: Any) -> dict | None:
    """The audit's estimate of the defect rate of approved-but-unreviewed items (None before any audit)."""
    from stillroom.curate.sampling import error_rate_estimate

    est = error_rate_estimate(store)
    return est if est["audited"] else None


# --- helpers ---------------------------------------------------------------

def _replace_turns(messages: list[dict], question: str | None, answer: str | None) -> list[dict]:
    """The first user turn becomes `question` and the last assistant turn `answer`; other turns stay."""
    msgs = [dict(m) for m in messages]
    users = [i for i, m in enumerate(msgs) if m.get("role") == "user"]
    bots = [i for i, m in enumerate(msgs) if m.get("role") == "assistant"]
    if question is not None:
        if users:
            msgs[users[0]]["content"] = question
        else:
            msgs.insert(0, {"role": "user", "content": question})
            bots = [i + 1 for i in bots]
    if answer is not None:
        if bots:
            msgs[bots[-1]]["content"] = answer
        else:
            msgs.append({"role": "assistant", "content": answer})
    return msgs


def _project_settings(store: Any) -> Any:
    """The project's settings (the store lives in the project folder); defaults where there is no stillroom.toml."""
    from stillroom.settings import Settings, load_settings

    path = store.db_path.parent / "stillroom.toml"
    return load_settings(path) if path.is_file() else Settings()
