"""Taking the next item: a lease on the best open item, and a key press (decide, then the next lease).

Which item comes next is read from an order kept in memory and brought in step with the database
whenever the file was opened anew (`stillroom.curate.review_order`): a key press costs a few narrow
statements (end the lease, append the decision and its audit row, take the next lease), not a ranking
of the whole queue. Only the decision and the lease are written in the transaction; the item's view is
read after it commits, so a view that cannot be built never takes a recorded decision with it.
`stillroom.curate.reviews` re-exports these calls.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Iterator

from stillroom.curate.review_log import audit, check_decision, item_state, record
from stillroom.curate.review_order import VIEW_SLICE, ReviewOrder, order_of
from stillroom.curate.state import utcnow
from stillroom.errors import StillroomError

# Take the item unless someone else holds a live lease on it (renewing one the reviewer holds).
_TAKE = ("UPDATE review_queue SET lease_owner = $me, lease_expires = $expires WHERE item_id = $id "
         "AND (lease_owner IS NULL OR lease_expires <= $now OR lease_owner = $me)")
# A key press in one statement: end the lease on the decided item and take the next, each row changed only
# where nobody else holds a live lease (as in `end_lease` and _TAKE). Two rows changed: both done.
_HAND_ON = ("UPDATE review_queue SET lease_owner = CASE WHEN item_id = $next THEN $me END, "
            "lease_expires = CASE WHEN item_id = $next THEN $expires END WHERE item_id IN ($done, $next) "
            "AND (lease_owner IS NULL OR lease_expires <= $now OR lease_owner = $me)")


def next_item(store: Any, reviewer: str, lease_s: float = 300, *, double_share: float = 0.0,
              with_view: bool = False) -> dict | None:
    """Lease the highest-priority open item nobody else holds and this reviewer has not decided.

    An item is open until as many different reviewers as it needs have decided it: one, or two for
    the `double_share` of items drawn for double review (`reviews_needed`). A reviewer who already
    holds a live lease gets that item back, the lease renewed (a reload shows the same item). Items the
    reviewer skipped stay out of their way until a lease period has passed. `with_view` adds the item's
    `view` (see `item_view`), fetched in a batch with the items likely to be asked for next.
    """
    now = utcnow()
    with _in_step(store, double_share, now, lease_s) as (con, order):
        item = _lease_next(con, order, reviewer, now, lease_s)
    return _with_view(store, order, item, now, with_view, reviewer)


def decide_and_next(store: Any, item_id: str, reviewer: str, decision: str, reason_code: str | None = None,
                    note: str | None = None, *, lease_s: float = 300, double_share: float = 0.0,
                    with_view: bool = False) -> dict | None:
    """A key press: `decide`, then `next_item`, in one transaction (one disk sync) and one look at the database.

    Raises, with nothing written, where `decide` would refuse. The next item's view is read once the
    decision is committed: if it cannot be built, the decision stands and the error is raised.
    """
    check_decision(decision, reason_code)
    now = utcnow()
    with _in_step(store, double_share, now, lease_s) as (con, order):
        # the order knows the last seq; an item in its window exists, and the INSERT reads its revision itself
        revision, seq = (None, order.last_seq + 1) if item_id in order.by_id else \
            item_state(con, item_id, last_seq=order.last_seq)
        nxt = _hand_on(con, order, item_id, reviewer, now, lease_s)
        record(con, order, item_id, reviewer, decision, reason_code, note, revision, seq, now,
               lease_ended=nxt is not None)
        if nxt is not None:
            order.leased(nxt["item_id"], reviewer, nxt["lease_expires"])
            item = nxt
        else:  # the decided item is not queued, someone else took the next one, or there is none
            item = _lease_next(con, order, reviewer, now, lease_s)
    return _with_view(store, order, item, now, with_view, reviewer)


def prefetch(store: Any, n: int = VIEW_SLICE) -> int:
    """Fetch the views of the next items (at most `n`) before anyone asks. Returns how many it fetched.

    The review server calls it after a response, again and again until it returns 0 or someone waits:
    each call holds the database for one slice only. Works from what the last `next_item` saw: nothing
    happens (not even a query) while enough views are ready. A view fetched just before someone else
    changes the item is dropped at the next `next_item`, which notices the change.
    """
    order = order_of(store)
    ids = order.views_wanted(utcnow(), n)
    if ids:
        with store.connect() as con:
            order.fetch_views(con, ids)
    return len(ids)


@contextmanager
def _in_step(store: Any, double_share: float, now: datetime, lease_s: float) -> Iterator[tuple]:
    """A transaction that starts with the order in step with the database and forgets it if anything fails,
    the commit included (a write rolled back leaves memory ahead of the file). Yields the connection and the order."""
    order = order_of(store)
    try:
        with store.transaction() as con:
            order.sync(con, double_share, now, lease_s)
            yield con, order
    except BaseException:
        order.forget()
        raise


def release(store: Any, item_id: str, reviewer: str) -> None:
    """Give a leased item back (a skip): others may take it; this reviewer will not see it for a lease period."""
    with store.transaction() as con:
        con.execute("UPDATE review_queue SET lease_owner = NULL, lease_expires = NULL "
                    "WHERE item_id = ? AND lease_owner = ?", [item_id, reviewer])
        audit(con, reviewer, "release", item_id)
        order_of(store).skipped(reviewer, item_id, utcnow())


def _with_view(store: Any, order: ReviewOrder, item: dict | None, now: datetime, with_view: bool,
               reviewer: str) -> dict | None:
    if item is None:
        return None
    if with_view:
        try:
            with store.connect() as con:
                item["view"] = order.view(con, item["item_id"], now)
        except StillroomError:
            # queued but not an item (a queue left from a rebuilt store): given back as a skip, so the reviewer's
            # next call moves on instead of renewing the lease on an item nobody can show
            release(store, item["item_id"], reviewer)
            raise
    return {**item, "id": item["item_id"]}


def _lease_next(con: Any, order: ReviewOrder, reviewer: str, now: datetime, lease_s: float) -> dict | None:
    held = order.held_by(reviewer, now)
    if held is not None:
        # memory says the reviewer holds it; the database has the last word (another process may have
        # released it and someone else taken it), and a reload renews the lease
        expires = _take(con, order, held.item_id, reviewer, now, lease_s)
        if expires is not None:
            return {"item_id": held.item_id, "priority": held.priority, "reason": held.reason,
                    "lease_expires": expires}
    return _claim(con, order, reviewer, now, lease_s)


def _hand_on(con: Any, order: ReviewOrder, item_id: str, reviewer: str, now: datetime, lease_s: float) -> dict | None:
    """End the reviewer's lease on `item_id` and lease the best candidate in one statement, if both rows agree.

    None where either did not (nothing is known then: the caller ends the lease and claims the usual way,
    renewing the next item's lease if this statement took it after all).
    """
    skip_since = now - timedelta(seconds=lease_s)
    e = next((e for e in order.candidates(con, reviewer, now, skip_since) if e.item_id != item_id), None)
    if e is None:
        return None
    expires = now + timedelta(seconds=lease_s)
    changed = con.execute(_HAND_ON, {"me": reviewer, "expires": expires, "done": item_id, "next": e.item_id,
                                     "now": now}).fetchone()[0]
    if changed != 2:
        return None
    return {"item_id": e.item_id, "priority": e.priority, "reason": e.reason, "lease_expires": expires}


def _claim(con: Any, order: ReviewOrder, reviewer: str, now: datetime, lease_s: float) -> dict | None:
    """Lease the first candidate the database agrees is free (another process may have leased it meanwhile)."""
    for e in order.candidates(con, reviewer, now, skip_since=now - timedelta(seconds=lease_s)):
        expires = _take(con, order, e.item_id, reviewer, now, lease_s)
        if expires is not None:
            return {"item_id": e.item_id, "priority": e.priority, "reason": e.reason, "lease_expires": expires}
    return None


def _take(con: Any, order: ReviewOrder, item_id: str, reviewer: str, now: datetime, lease_s: float) -> datetime | None:
    """Lease `item_id` to the reviewer if the database agrees; the order learns the outcome either way."""
    expires = now + timedelta(seconds=lease_s)
    if con.execute(_TAKE, {"me": reviewer, "expires": expires, "id": item_id, "now": now}).fetchone()[0]:
        order.leased(item_id, reviewer, expires)
        return expires
    row = con.execute("SELECT lease_owner, lease_expires FROM review_queue WHERE item_id = ?", [item_id]).fetchone()
    order.leased(item_id, *(row or (None, None)))
    return None
