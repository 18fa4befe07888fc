"""The decisions API the review UI (and `stillroom decide`) calls.

Leases keep two reviewers off the same item; a lease runs out by itself, so a closed browser
never strands an item. Decisions are appended, never updated: an undo is a new row that withdraws
an earlier one, an edit is a new revision of the item, re-scored at once. Every change is also
written to `audit_log`. Which item comes next is read from an order kept in memory and checked
against the database on every call (`stillroom.curate.review_order`): a key press costs a few
narrow statements, not a ranking of the whole queue.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from stillroom.curate.review_order import FINGERPRINT, order_of, reviews_needed  # noqa: F401 (part of this API)
from stillroom.curate.state import EFFECTIVE, utcnow
from stillroom.errors import StillroomError, UsageError
from stillroom.ids import content_id

DECISIONS = ("approve", "reject")


def next_item(store: Any, reviewer: str, lease_s: float = 300, *, double_share: float = 0.0,
              with_view: bool = False) -> dict | None:
    """Lease the highest-priority open item nobody else holds and this reviewer has not decided.

    An item is open until as many different reviewers as it needs have decided it: one, or two for
    the `double_share` of items drawn for double review (`reviews_needed`). A reviewer who already
    holds a live lease gets that item back (a reload shows the same item). Items the reviewer skipped
    stay out of their way until a lease period has passed. `with_view` adds the item's `view`
    (see `item_view`), fetched in a batch with the items likely to be asked for next.
    """
    now = utcnow()
    order = order_of(store)
    with store.transaction() as con:
        try:
            _sync(con, order, double_share, now, lease_s)
            return _lease_next(con, order, reviewer, now, lease_s, with_view)
        except BaseException:
            order.forget()
            raise


def decide_and_next(store: Any, item_id: str, reviewer: str, decision: str, reason_code: str | None = None,
                    note: str | None = None, *, lease_s: float = 300, double_share: float = 0.0,
                    with_view: bool = False) -> dict | None:
    """A key press: `decide`, then `next_item`, in one transaction (one disk sync) and one look at the database.

    Raises, with nothing written, where `decide` would refuse.
    """
    _check_decision(decision, reason_code)
    now = utcnow()
    order = order_of(store)
    with store.transaction() as con:
        try:
            fp = _sync(con, order, double_share, now, lease_s)
            # the fingerprint just read holds the last seq; a queued item in the window is known to exist
            revision, seq = _item_state(con, item_id, known=item_id in order.by_id, last_seq=fp[1])
            _record(con, order, item_id, reviewer, decision, reason_code, note, revision, seq)
            return _lease_next(con, order, reviewer, now, lease_s, with_view)
        except BaseException:
            order.forget()
            raise


def _sync(con: Any, order: Any, double_share: float, now, lease_s: float) -> tuple:
    fp = tuple(con.execute(f"SELECT {FINGERPRINT}").fetchone())
    order.sync(con, double_share, fp, now, lease_s)
    return fp


def _lease_next(con: Any, order: Any, reviewer: str, now, lease_s: float, with_view: bool) -> dict | None:
    held = order.held_by(reviewer, now)
    if held is not None:
        item = {"item_id": held.item_id, "priority": held.priority, "reason": held.reason,
                "lease_expires": held.expires}
    else:
        item = _claim(con, order, reviewer, now, lease_s)
    if item is None:
        return None
    if with_view:
        item["view"] = order.view(con, item["item_id"], now)
    return {**item, "id": item["item_id"]}


def _claim(con: Any, order: Any, reviewer: str, now, lease_s: float) -> dict | None:
    """Lease the first candidate the database agrees is free (another process may have leased it meanwhile)."""
    expires = now + timedelta(seconds=lease_s)
    for e in order.candidates(con, reviewer, now, skip_since=now - timedelta(seconds=lease_s)):
        taken = con.execute(
            "UPDATE review_queue SET lease_owner = $me, lease_expires = $expires WHERE item_id = $id "
            "AND (lease_owner IS NULL OR lease_expires <= $now OR lease_owner = $me)",
            {"me": reviewer, "expires": expires, "id": e.item_id, "now": now}).fetchone()[0]
        if taken:
            order.leased(e.item_id, reviewer, expires)
            return {"item_id": e.item_id, "priority": e.priority, "reason": e.reason, "lease_expires": expires}
        row = con.execute("SELECT lease_owner, lease_expires FROM review_queue WHERE item_id = ?",
                          [e.item_id]).fetchone()
        order.leased(e.item_id, *(row or (None, None)))
    return None


def prefetch(store: Any) -> int:
    """Fetch the views of the next items before anyone asks (the review server calls it after a response).

    Works from what the last `next_item` saw: nothing happens (not even a query) while enough views are
    ready. A view fetched just before someone else changes the item is dropped at the next `next_item`,
    which notices the change. Returns how many views it fetched.
    """
    order = order_of(store)
    ids = order.views_wanted(utcnow())
    if ids:
        with store.connect() as con:
            order.fetch_views(con, ids)
    return len(ids)


def release(store: Any, item_id: str, reviewer: str) -> None:
    """Give a leased item back (a skip): others may take it; this reviewer will not see it for a lease period."""
    with store.transaction() as con:
        con.execute("UPDATE review_queue SET lease_owner = NULL, lease_expires = NULL "
                    "WHERE item_id = ? AND lease_owner = ?", [item_id, reviewer])
        _audit(con, reviewer, "release", item_id)
        order_of(store).skipped(reviewer, item_id, utcnow())


def decide(store: Any, item_id: str, reviewer: str, decision: str, reason_code: str | None = None,
           note: str | None = None) -> str:
    """Record approve or reject (a reject names its reason code). Returns the decision's id.

    Refused, with nothing written, while another reviewer holds the item's lease.
    """
    _check_decision(decision, reason_code)
    with store.transaction() as con:
        revision, seq = _item_state(con, item_id)
        return _record(con, order_of(store), item_id, reviewer, decision, reason_code, note, revision, seq)


def _record(con: Any, order: Any, item_id: str, reviewer: str, decision: str, reason_code: str | None,
            note: str | None, revision: int, seq: int) -> str:
    _end_lease(con, item_id, reviewer)
    created_at = utcnow()
    review_id = _append(con, item_id, revision, reviewer, decision, reason_code, note, seq=seq, at=created_at)
    _audit(con, reviewer, decision, item_id, {"review_id": review_id, "revision": revision,
                                              "reason_code": reason_code, "note": note})
    order.decided(item_id, reviewer, seq, {"reviewer": reviewer, "decision": decision, "reason_code": reason_code,
                                           "revision": revision, "at": created_at})
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
    order_of(store).forget()
    return len(ids)


def edit(store: Any, item_id: str, reviewer: str, *, question: str | None = None, answer: str | None = None,
         messages: list[dict] | None = None, settings: Any = None) -> int:
    """Save a new revision of the item (the original is never changed) and score it at once. Returns its number."""
    if question is None and answer is None and messages is None:
        raise UsageError("edit needs a new question, answer or messages")
    with store.transaction() as con:
        revision, seq = _item_state(con, item_id)
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
        review_id = _append(con, item_id, new, reviewer, "edit", None, None, seq=seq)
        _audit(con, reviewer, "edit", item_id, {"review_id": review_id, "revision": new, "from_revision": revision})
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
        revision, seq = _item_state(con, item_id)
        undo_id = _append(con, item_id, revision, reviewer, "undo", None, None, undoes=review_id, seq=seq)
        con.execute("UPDATE review_queue SET lease_owner = NULL, lease_expires = NULL WHERE lease_owner = ?",
                    [reviewer])
        expires = now + timedelta(seconds=lease_s)
        granted = con.execute("UPDATE review_queue SET lease_owner = $me, lease_expires = $expires WHERE item_id = $id "
                              "AND (lease_owner IS NULL OR lease_expires <= $now)",
                              {"me": reviewer, "expires": expires, "id": item_id, "now": now}).fetchone()[0]
        _audit(con, reviewer, "undo", item_id, {"review_id": undo_id, "undoes": review_id})
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

def _check_decision(decision: str, reason_code: str | None) -> None:
    if decision not in DECISIONS:
        raise UsageError(f"unknown decision {decision!r} — use approve or reject (edits go through edit())")
    if decision == "reject" and not reason_code:
        raise UsageError("a rejection needs a reason code (e.g. wrong, unsupported, incomplete) — pass one")


def _item_state(con: Any, item_id: str, *, known: bool = False, last_seq: int | None = None) -> tuple[int, int]:
    """The item's current revision and the next decision's seq; refuses an item that does not exist."""
    exists, revision, seq = con.execute(
        "SELECT " + ("1" if known else "(SELECT count(*) FROM items WHERE id = $id)")
        + ", (SELECT coalesce(max(revision), 0) FROM item_revisions WHERE item_id = $id), "
        + ("$seq" if last_seq is not None else "(SELECT coalesce(max(seq), 0) + 1 FROM reviews)"),
        {"id": item_id, **({"seq": last_seq + 1} if last_seq is not None else {})}).fetchone()
    if not exists:
        raise StillroomError(f"no item {item_id!r} — list items with `stillroom items`")
    return revision, seq


def _end_lease(con: Any, item_id: str, reviewer: str) -> None:
    """Clear the item's lease unless another reviewer holds it (then refuse: nothing has been written yet)."""
    now = utcnow()
    if not con.execute("UPDATE review_queue SET lease_owner = NULL, lease_expires = NULL WHERE item_id = $id "
                       "AND (lease_owner IS NULL OR lease_owner = $me OR lease_expires <= $now)",
                       {"id": item_id, "me": reviewer, "now": now}).fetchone()[0]:
        _check_lease(con, item_id, reviewer)  # not queued at all is fine: a decision outside the queue


def _check_lease(con: Any, item_id: str, reviewer: str) -> None:
    row = con.execute("SELECT lease_owner, lease_expires FROM review_queue WHERE item_id = ?", [item_id]).fetchone()
    if row and row[0] and row[0] != reviewer and row[1] and row[1] > utcnow():
        raise StillroomError(f"item {item_id} is being reviewed by {row[0]} until {row[1]:%H:%M:%S} UTC — "
                             "take the next item instead")


def _append(con: Any, item_id: str, revision: int, reviewer: str, decision: str, reason_code: str | None,
            note: str | None, undoes: str | None = None, *, seq: int, at=None) -> str:
    review_id = content_id("dec", {"item": item_id, "reviewer": reviewer, "seq": seq})
    con.execute("INSERT INTO reviews (id, item_id, revision, reviewer, decision, reason_code, note, undoes, seq, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [review_id, item_id, revision, reviewer, decision, reason_code, note, undoes, seq, at or utcnow()])
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
