"""The decisions API the review UI (and `stillroom decide`) calls.

Leases keep two reviewers off the same item; a lease runs out by itself, so a closed browser
never strands an item. Decisions are appended, never updated: an undo is a new row that withdraws
an earlier one, an edit is a new revision of the item, re-scored at once. Every change is also
written to `audit_log`.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from stillroom.curate.state import EFFECTIVE, utcnow
from stillroom.errors import StillroomError, UsageError
from stillroom.ids import content_id

DECISIONS = ("approve", "reject")


def next_item(store: Any, reviewer: str, lease_s: float = 300, *, reviews_per_item: int = 1) -> dict | None:
    """Lease the highest-priority queued item nobody else holds and this reviewer has not decided.

    A reviewer who already holds a live lease gets that item back (a reload shows the same item).
    Items the reviewer skipped stay out of their way until a lease period has passed.
    """
    now = utcnow()
    with store.transaction() as con:
        row = con.execute(
            "SELECT item_id, priority, reason FROM review_queue WHERE lease_owner = ? AND lease_expires > ? "
            "ORDER BY lease_expires DESC LIMIT 1", [reviewer, now]).fetchone()
        if row is None:
            row = _first_free(con, reviewer, now, lease_s, reviews_per_item)
        if row is None:
            return None
        expires = now + timedelta(seconds=lease_s)
        con.execute("UPDATE review_queue SET lease_owner = NULL, lease_expires = NULL "
                    "WHERE lease_owner = ? AND item_id <> ?", [reviewer, row[0]])
        con.execute("UPDATE review_queue SET lease_owner = ?, lease_expires = ? WHERE item_id = ?",
                    [reviewer, expires, row[0]])
    return {"item_id": row[0], "id": row[0], "priority": row[1], "reason": row[2], "lease_expires": expires}


# Candidates are ranked on the queue alone, then only a window of them is checked against the
# decisions: checking every queued item made each key press cost ~250 ms at 200,000 items.
_CANDIDATES = """
WITH cand AS (
  SELECT item_id, priority, reason FROM review_queue q
  WHERE q.lease_owner IS NULL OR q.lease_expires <= $now OR q.lease_owner = $me
  ORDER BY q.priority DESC, q.item_id LIMIT $window),
eff AS (
  SELECT r.item_id, r.reviewer FROM reviews r
  WHERE r.item_id IN (SELECT item_id FROM cand) AND r.decision IN ('approve', 'reject')
    AND NOT EXISTS (SELECT 1 FROM reviews u WHERE u.decision = 'undo' AND u.undoes = r.id))
SELECT c.item_id, c.priority, c.reason FROM cand c
WHERE NOT EXISTS (SELECT 1 FROM eff WHERE eff.item_id = c.item_id AND eff.reviewer = $me)
  AND (SELECT count(*) FROM eff WHERE eff.item_id = c.item_id) < $per_item
  AND NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.actor = $me AND a.action = 'release'
                  AND a.subject = c.item_id AND a.created_at > $skip_since)
ORDER BY c.priority DESC, c.item_id LIMIT 1
"""


def _first_free(con: Any, reviewer: str, now, lease_s: float, per_item: int):
    """The best queued item this reviewer may take; the window of candidates grows until one fits."""
    total = con.execute("SELECT count(*) FROM review_queue").fetchone()[0]
    window = 64
    while True:
        row = con.execute(_CANDIDATES, {"now": now, "me": reviewer, "per_item": per_item, "window": window,
                                        "skip_since": now - timedelta(seconds=lease_s)}).fetchone()
        if row is not None or window >= total:
            return row
        window *= 8


def release(store: Any, item_id: str, reviewer: str) -> None:
    """Give a leased item back (a skip): others may take it; this reviewer will not see it for a lease period."""
    with store.transaction() as con:
        con.execute("UPDATE review_queue SET lease_owner = NULL, lease_expires = NULL "
                    "WHERE item_id = ? AND lease_owner = ?", [item_id, reviewer])
        _audit(con, reviewer, "release", item_id)


def decide(store: Any, item_id: str, reviewer: str, decision: str, reason_code: str | None = None,
           note: str | None = None) -> str:
    """Record approve or reject (a reject names its reason code). Returns the decision's id."""
    _check_decision(decision, reason_code)
    with store.transaction() as con:
        revision = _current_revision(con, item_id)
        _check_lease(con, item_id, reviewer)
        review_id = _append(con, item_id, revision, reviewer, decision, reason_code, note)
        con.execute("UPDATE review_queue SET lease_owner = NULL, lease_expires = NULL WHERE item_id = ?", [item_id])
        _audit(con, reviewer, decision, item_id, {"review_id": review_id, "revision": revision,
                                                  "reason_code": reason_code, "note": note})
    return review_id


def decide_many(store: Any, item_ids: list[str], reviewer: str, decision: str, reason_code: str | None = None,
                note: str | None = None) -> int:
    """A bulk decision (an admin from the command line): one transaction, audited like any other."""
    _check_decision(decision, reason_code)
    import numpy as np

    ids = sorted(set(item_ids))
    if not ids:
        return 0
    now = utcnow()
    with store.transaction() as con:
        start = con.execute("SELECT coalesce(max(seq), 0) FROM reviews").fetchall()[0][0]
        con.register("bulk_ids", {"item_id": np.array(ids, dtype=object)})
        try:
            con.execute("""
                WITH cur AS (SELECT item_id, max(revision) AS revision FROM item_revisions GROUP BY item_id),
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
        _audit(con, reviewer, f"bulk_{decision}", None, {"items": len(ids), "reason_code": reason_code,
                                                         "note": note, "first_seq": start + 1})
    return len(ids)


def edit(store: Any, item_id: str, reviewer: str, *, question: str | None = None, answer: str | None = None,
         messages: list[dict] | None = None, settings: Any = None) -> int:
    """Save a new revision of the item (the original is never changed) and score it at once. Returns its number."""
    if question is None and answer is None and messages is None:
        raise UsageError("edit needs a new question, answer or messages")
    with store.transaction() as con:
        revision = _current_revision(con, item_id)
        _check_lease(con, item_id, reviewer)
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
        review_id = _append(con, item_id, new, reviewer, "edit", None, None)
        _audit(con, reviewer, "edit", item_id, {"review_id": review_id, "revision": new, "from_revision": revision})
    from stillroom.curate import scoring

    scoring.score_items(store, settings or _project_settings(store), [item_id])
    return new


def undo(store: Any, reviewer: str, lease_s: float = 300) -> str | None:
    """Withdraw this reviewer's last standing approve/reject; the item comes back to them. Returns its id."""
    with store.transaction() as con:
        row = con.execute(f"""WITH eff AS ({EFFECTIVE})
            SELECT id, item_id FROM eff WHERE reviewer = ? ORDER BY seq DESC LIMIT 1""", [reviewer]).fetchone()
        if row is None:
            return None
        review_id, item_id = row
        undo_id = _append(con, item_id, _current_revision(con, item_id), reviewer, "undo", None, None,
                          undoes=review_id)
        con.execute("UPDATE review_queue SET lease_owner = NULL, lease_expires = NULL WHERE lease_owner = ?",
                    [reviewer])
        con.execute("UPDATE review_queue SET lease_owner = ?, lease_expires = ? WHERE item_id = ?",
                    [reviewer, utcnow() + timedelta(seconds=lease_s), item_id])
        _audit(con, reviewer, "undo", item_id, {"review_id": undo_id, "undoes": review_id})
    return item_id


def item_view(store: Any, item_id: str) -> dict:
    """Everything a reviewer needs to judge one item: see `stillroom.curate.view`."""
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

def _check_decision(decision: str, reason_code: str | None) -> None:
    if decision not in DECISIONS:
        raise UsageError(f"unknown decision {decision!r} — use approve or reject (edits go through edit())")
    if decision == "reject" and not reason_code:
        raise UsageError("a rejection needs a reason code (e.g. wrong, unsupported, incomplete) — pass one")


def _current_revision(con: Any, item_id: str) -> int:
    row = con.execute("SELECT (SELECT coalesce(max(revision), 0) FROM item_revisions WHERE item_id = i.id) "
                      "FROM items i WHERE i.id = ?", [item_id]).fetchone()
    if row is None:
        raise StillroomError(f"no item {item_id!r} — list items with `stillroom items`")
    return row[0]


def _check_lease(con: Any, item_id: str, reviewer: str) -> None:
    row = con.execute("SELECT lease_owner, lease_expires FROM review_queue WHERE item_id = ?", [item_id]).fetchone()
    if row and row[0] and row[0] != reviewer and row[1] and row[1] > utcnow():
        raise StillroomError(f"item {item_id} is being reviewed by {row[0]} until {row[1]:%H:%M:%S} UTC — "
                             "take the next item instead")


def _append(con: Any, item_id: str, revision: int, reviewer: str, decision: str, reason_code: str | None,
            note: str | None, undoes: str | None = None) -> str:
    seq = con.execute("SELECT coalesce(max(seq), 0) + 1 FROM reviews").fetchone()[0]
    review_id = content_id("dec", {"item": item_id, "reviewer": reviewer, "seq": seq})
    con.execute("INSERT INTO reviews (id, item_id, revision, reviewer, decision, reason_code, note, undoes, seq, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [review_id, item_id, revision, reviewer, decision, reason_code, note, undoes, seq, utcnow()])
    return review_id


def _audit(con: Any, actor: str, action: str, subject: str | None, detail: dict | None = None) -> None:
    con.execute("INSERT INTO audit_log (created_at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
                [utcnow(), actor, action, subject, json.dumps(detail, ensure_ascii=False) if detail else None])


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
