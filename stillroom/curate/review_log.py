"""Appending to the review log: decisions, their audit rows, and the lease checks that guard them.

Shared by `stillroom.curate.reviews` (decide, edit, undo) and `stillroom.curate.queue` (a key press).
Rows are appended, never updated; every change also gets an `audit_log` row.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from stillroom.curate.state import utcnow
from stillroom.errors import StillroomError, UsageError
from stillroom.ids import content_id

DECISIONS = ("approve", "reject")


def check_decision(decision: str, reason_code: str | None) -> None:
    if decision not in DECISIONS:
        raise UsageError(f"unknown decision {decision!r} — use approve or reject (edits go through edit())")
    if decision == "reject" and not reason_code:
        raise UsageError("a rejection needs a reason code (e.g. wrong, unsupported, incomplete) — pass one")


def item_state(con: Any, item_id: str, *, last_seq: int | None = None) -> tuple[int, int]:
    """The item's current revision and the next decision's seq; refuses an item that does not exist."""
    exists, revision, seq = con.execute(
        "SELECT (SELECT count(*) FROM items WHERE id = $id), "
        "(SELECT coalesce(max(revision), 0) FROM item_revisions WHERE item_id = $id), "
        + ("$seq" if last_seq is not None else "(SELECT coalesce(max(seq), 0) + 1 FROM reviews)"),
        {"id": item_id, **({"seq": last_seq + 1} if last_seq is not None else {})}).fetchone()
    if not exists:
        raise StillroomError(f"no item {item_id!r} — list items with `stillroom items`")
    return revision, seq


def record(con: Any, order: Any, item_id: str, reviewer: str, decision: str, reason_code: str | None,
           note: str | None, revision: int | None, seq: int, now: datetime, *, lease_ended: bool = False) -> str:
    """Append an approve/reject (ending the reviewer's lease on the item) and tell the in-memory order.

    `revision` None: the item's current revision, read by the INSERT itself (one statement fewer).
    `lease_ended`: the caller has ended the lease already, in the same transaction.
    """
    if not lease_ended:
        end_lease(con, item_id, reviewer, now)
    if revision is None:
        review_id, revision = append_current(con, item_id, reviewer, decision, reason_code, note, seq=seq, at=now)
    else:
        review_id = append(con, item_id, revision, reviewer, decision, reason_code, note, seq=seq, at=now)
    audit(con, reviewer, decision, item_id, {"review_id": review_id, "revision": revision,
                                             "reason_code": reason_code, "note": note})
    order.decided(item_id, reviewer, seq, {"reviewer": reviewer, "decision": decision, "reason_code": reason_code,
                                           "revision": revision, "at": now})
    return review_id


def end_lease(con: Any, item_id: str, reviewer: str, now: datetime) -> None:
    """Clear the item's lease unless another reviewer holds it (then refuse: nothing has been written yet)."""
    if not con.execute("UPDATE review_queue SET lease_owner = NULL, lease_expires = NULL WHERE item_id = $id "
                       "AND (lease_owner IS NULL OR lease_owner = $me OR lease_expires <= $now)",
                       {"id": item_id, "me": reviewer, "now": now}).fetchone()[0]:
        check_lease(con, item_id, reviewer, now)  # not queued at all is fine: a decision outside the queue


def check_lease(con: Any, item_id: str, reviewer: str, now: datetime) -> None:
    row = con.execute("SELECT lease_owner, lease_expires FROM review_queue WHERE item_id = ?", [item_id]).fetchone()
    if row and row[0] and row[0] != reviewer and row[1] and row[1] > now:
        raise StillroomError(f"item {item_id} is being reviewed by {row[0]} until {row[1]:%H:%M:%S} UTC — "
                             "take the next item instead")


def _review_id(item_id: str, reviewer: str, seq: int) -> str:
    return content_id("dec", {"item": item_id, "reviewer": reviewer, "seq": seq})


_INSERT = "INSERT INTO reviews (id, item_id, revision, reviewer, decision, reason_code, note, undoes, seq, created_at) "


def append(con: Any, item_id: str, revision: int, reviewer: str, decision: str, reason_code: str | None,
           note: str | None, undoes: str | None = None, *, seq: int, at: datetime | None = None) -> str:
    review_id = _review_id(item_id, reviewer, seq)
    con.execute(_INSERT + "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [review_id, item_id, revision, reviewer, decision, reason_code, note, undoes, seq, at or utcnow()])
    return review_id


def append_current(con: Any, item_id: str, reviewer: str, decision: str, reason_code: str | None,
                   note: str | None, *, seq: int, at: datetime) -> tuple[str, int]:
    """`append` on the item's current revision, looked up by the INSERT. Returns the decision's id and the revision."""
    review_id = _review_id(item_id, reviewer, seq)
    revision = con.execute(
        _INSERT + "SELECT $rid, $id, (SELECT coalesce(max(revision), 0) FROM item_revisions WHERE item_id = $id), "
        "$who, $decision, $reason, $note, NULL, $seq, $at RETURNING revision",
        {"rid": review_id, "id": item_id, "who": reviewer, "decision": decision, "reason": reason_code,
         "note": note, "seq": seq, "at": at}).fetchone()[0]
    return review_id, revision


def audit(con: Any, actor: str, action: str, subject: str | None, detail: dict | None = None) -> None:
    con.execute("INSERT INTO audit_log (created_at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
                [utcnow(), actor, action, subject, json.dumps(detail, ensure_ascii=False) if detail else None])
