"""The review queue's order, held in memory, so that a key press does not rank every queued item.

Asking DuckDB for the best free item on every key press means ranking the whole queue (10–20 ms
at 200,000 items on two cores) and checking it against every decision (far more). Instead each
`Store` gets one `ReviewOrder`: a window of the open queue (items that still need a decision) in
priority order with who has decided each item, the live leases and recent skips, and the views of
the items about to be shown, fetched in batches.

The database stays the record and the arbiter. A lease is taken by a conditional UPDATE inside the
caller's transaction, so two reviewers never hold one item, even with two processes on one project.
Memory holds only a guess of where to look, and it is reloaded whenever the database changed behind
this process's back. Only another process can do that, and only while this one has the file closed
(DuckDB lets one process open it; `Store` closes it before another may have it): so a call on the
connection the order last looked through trusts memory, and a call on a newly opened one compares a
fingerprint (queue rows, the last decision's seq, the newest score) with the one this process last
read or wrote itself. What this process writes goes through `stillroom.curate.reviews`, which keeps
the order in step (or has it `forget`).
"""

from __future__ import annotations

import hashlib
import itertools
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterator

from stillroom.curate.state import EFFECTIVE
from stillroom.errors import StillroomError

WINDOW = 2048  # open items held per load; reloaded when they run out, and grown when that is not enough
# Fetching item views costs a scan of `scores` (and `items`) however few items it is for: ~13 ms for
# one item, ~50 ms for 64 and ~90 ms for 512 at 200,000 items × 8 scorers on two cores. So views are fetched
# ahead in batches after a response, a slice at a time so that a key press never waits long for the
# database; a miss fetches one slice while a reviewer waits.
VIEW_BATCH = 512  # views fetched ahead after a response (in slices, stopping when anyone waits)
VIEW_SLICE = 64  # views fetched at once: a slice ahead, or the asked-for view and those likely next on a miss
VIEWS_READY = 64  # fetch ahead when fewer than this many of the next open, unheld items have a view

# Changes whenever anyone queues, decides, undoes, edits or re-scores (the columns of one SELECT).
FINGERPRINT = ("(SELECT count(*) FROM review_queue), (SELECT coalesce(max(seq), 0) FROM reviews), "
               "(SELECT max(created_at) FROM scores)")


def threshold(share: float) -> int:
    """The double-review draw takes an item when the first 32 bits of sha256(item id) fall below this."""
    return int(min(max(share, 0.0), 1.0) * 2**32)


def drawn(column: str) -> str:
    """SQL true for the items drawn for double review (`column`: the item id); binds `$threshold`."""
    return f"('0x' || substr(sha256({column}), 1, 8))::UBIGINT < $threshold"


def reviews_needed(item_id: str, double_share: float) -> int:
    """2 for the share of items drawn for double review (the same draw as `drawn`), else 1."""
    if double_share <= 0:
        return 1
    return 2 if int(hashlib.sha256(item_id.encode()).hexdigest()[:8], 16) < threshold(double_share) else 1


# The open part of the queue: items nobody decided, and double-review items one reviewer decided.
# The double-review draw is computed only for decided items and the rows of the window, never the whole queue.
_LOAD = f"""
WITH eff AS ({EFFECTIVE}),
dec AS (
  SELECT item_id, list(DISTINCT reviewer) AS reviewers, {drawn("item_id")} AS double
  FROM eff GROUP BY item_id),
win AS (
  SELECT q.item_id, q.priority, q.reason, q.lease_owner, q.lease_expires, coalesce(dec.reviewers, []) AS reviewers
  FROM review_queue q LEFT JOIN dec ON dec.item_id = q.item_id
  WHERE dec.item_id IS NULL OR (dec.double AND len(dec.reviewers) < 2)
  ORDER BY q.priority DESC, q.item_id
  LIMIT $window)
SELECT item_id, priority, reason, CASE WHEN {drawn("item_id")} THEN 2 ELSE 1 END, lease_owner, lease_expires, reviewers
FROM win ORDER BY priority DESC, item_id
"""
_LEASES = ("SELECT lease_owner, item_id, priority, reason, lease_expires FROM review_queue "
           "WHERE lease_expires > $now ORDER BY lease_expires")
_SKIPS = ("SELECT actor, subject, max(created_at) FROM audit_log WHERE action = 'release' AND created_at > $since "
          "GROUP BY ALL")


@dataclass
class Entry:
    item_id: str
    priority: float
    reason: str
    needed: int
    reviewers: set[str] = field(default_factory=set)
    lease_owner: str | None = None
    lease_expires: datetime | None = None

    @property
    def open(self) -> bool:
        return len(self.reviewers) < self.needed

    def unheld(self, now: datetime) -> bool:
        return self.lease_owner is None or self.lease_expires is None or self.lease_expires <= now

    def free_for(self, reviewer: str, now: datetime) -> bool:
        return (self.open and reviewer not in self.reviewers
                and (self.lease_owner == reviewer or self.unheld(now)))


@dataclass
class Lease:
    item_id: str
    priority: float
    reason: str
    expires: datetime


class ReviewOrder:
    def __init__(self) -> None:
        self.fingerprint: tuple | None = None
        self.con: Any = None  # the connection the fingerprint was last read through (kept: its id is never reused)
        self.share = 0.0
        self.window = WINDOW
        self.entries: list[Entry] = []
        self.by_id: dict[str, Entry] = {}
        self.complete = False  # the window holds every open item
        self.head = 0  # entries before this one are all closed (decided enough): walks start here
        self.held: dict[str, Lease] = {}  # reviewer → their live lease
        self.skips: dict[tuple[str, str], datetime] = {}  # (reviewer, item) → when skipped
        self.views: dict[str, dict] = {}
        self.ahead = 0  # views still to fetch in this round of fetching ahead
        self.unbuilt: set[str] = set()  # queued ids a fetch found no item for: not fetched ahead again

    # --- keeping in step with the database ------------------------------------

    def sync(self, con: Any, share: float, now: datetime, skip_s: float) -> None:
        """Reload when someone else queued, decided or scored since this process looked.

        No query while `con` is the connection of the last look: the file has stayed open in this
        process since, so nobody else can have written. On a newly opened connection the FINGERPRINT
        is read (in the caller's transaction) and the order reloaded if it moved.
        """
        if con is self.con and self.fingerprint is not None and share == self.share:
            return
        fp = tuple(con.execute(f"SELECT {FINGERPRINT}").fetchone())
        self.con = con
        if fp == self.fingerprint and share == self.share:
            return
        self.views.clear()
        self.ahead = 0
        self.unbuilt.clear()
        self.window = WINDOW
        self._load(con, share)
        self.held = {}
        for owner, item_id, priority, reason, expires in con.execute(_LEASES, {"now": now}).fetchall():
            self.held[owner] = Lease(item_id, priority, reason, expires)  # the latest wins, as ORDER BY gives
        since = now - timedelta(seconds=skip_s)
        self.skips = {(who, item): at for who, item, at in con.execute(_SKIPS, {"since": since}).fetchall()}
        self.fingerprint = fp

    def _load(self, con: Any, share: float) -> None:
        rows = con.execute(_LOAD, {"threshold": threshold(share), "window": self.window}).fetchall()
        self.share = share
        self.entries = [Entry(i, p, r, n, set(revs), o, x) for i, p, r, n, o, x, revs in rows]
        self.by_id = {e.item_id: e for e in self.entries}
        self.complete = len(rows) < self.window
        self.head = 0

    def forget(self) -> None:
        """Reload on the next call (after an edit re-scored an item, or a write that was rolled back)."""
        self.fingerprint = None

    @property
    def last_seq(self) -> int:
        """The seq of the last decision, as of the last `sync` (and this process's own writes since)."""
        return self.fingerprint[1]

    # --- choosing ---------------------------------------------------------------

    def held_by(self, reviewer: str, now: datetime) -> Lease | None:
        lease = self.held.get(reviewer)
        return lease if lease is not None and lease.expires > now else None

    def candidates(self, con: Any, reviewer: str, now: datetime, skip_since: datetime) -> Iterator[Entry]:
        """Entries this reviewer may take, best first; the window is reloaded (or grown) when it runs dry."""
        tried: set[str] = set()
        while True:
            for e in self._open_entries():
                if e.item_id not in tried:
                    tried.add(e.item_id)
                    if e.free_for(reviewer, now) and self.skips.get((reviewer, e.item_id), skip_since) <= skip_since:
                        yield e
            if self.complete:
                return
            self._load(con, self.share)  # decided items drop out, so the same window reaches further
            if all(e.item_id in tried for e in self.entries):
                self.window *= 4  # all held, skipped or already decided by this reviewer: look deeper
                self._load(con, self.share)

    def _open_entries(self) -> Iterator[Entry]:
        while self.head < len(self.entries) and not self.entries[self.head].open:
            self.head += 1
        return itertools.islice(self.entries, self.head, None)

    def upcoming(self, n: int, now: datetime) -> list[str]:
        """The next open items nobody holds whose views are not fetched yet."""
        out = []
        for e in self._open_entries():
            if e.open and e.item_id not in self.views and e.item_id not in self.unbuilt and e.unheld(now):
                out.append(e.item_id)
                if len(out) == n:
                    break
        return out

    # --- item views -------------------------------------------------------------

    def view(self, con: Any, item_id: str, now: datetime) -> dict:
        """The item's view; a miss fetches it together with the views of the items likely to come next."""
        if item_id not in self.views:
            self.fetch_views(con, [item_id, *self.upcoming(VIEW_SLICE - 1, now)])
            if item_id not in self.views:
                raise StillroomError(f"queued item {item_id!r} is not in items — run `stillroom curate` to rebuild "
                                     "the queue")
        return dict(self.views[item_id])

    def views_wanted(self, now: datetime, n: int = VIEW_SLICE) -> list[str]:
        """The next slice (at most `n`) of items whose views to fetch ahead.

        A round of VIEW_BATCH views starts when fewer than VIEWS_READY of the next open, unheld items
        have one (until then nothing is fetched, not even a query) and goes on one slice per call.
        """
        if self.fingerprint is None:
            return []
        if self.ahead <= 0:
            ready = seen = 0
            for e in self._open_entries():
                if e.open and e.unheld(now):
                    seen += 1
                    ready += e.item_id in self.views or e.item_id in self.unbuilt
                    if seen == VIEWS_READY:
                        break
            if ready == seen:
                return []
            self.ahead = VIEW_BATCH
        ids = self.upcoming(min(n, self.ahead), now)
        self.ahead = self.ahead - len(ids) if ids else 0
        return ids

    def fetch_views(self, con: Any, item_ids: list[str]) -> None:
        from stillroom.curate.view import build_views

        views = build_views(con, item_ids)
        self.views.update(views)
        self.unbuilt.update(i for i in item_ids if i not in views)

    # --- what this process wrote (applied right after the write, in the same transaction) --------

    def leased(self, item_id: str, owner: str | None, expires: datetime | None) -> None:
        e = self.by_id.get(item_id)
        if e is not None:
            e.lease_owner, e.lease_expires = owner, expires
        before = None
        for who, lease in list(self.held.items()):
            if lease.item_id == item_id or who == owner:
                before = lease if lease.item_id == item_id else before
                del self.held[who]
        if owner is not None and expires is not None:
            known = e or before
            priority, reason = (known.priority, known.reason) if known is not None else (0.0, "")
            self.held[owner] = Lease(item_id, priority, reason, expires)

    def skipped(self, reviewer: str, item_id: str, at: datetime) -> None:
        self.leased(item_id, None, None)
        self.skips[(reviewer, item_id)] = at

    def decided(self, item_id: str, reviewer: str, seq: int, record: dict) -> None:
        """`record`: the decision as the view's history shows it."""
        self.leased(item_id, None, None)
        e = self.by_id.get(item_id)
        if e is not None:
            e.reviewers.add(reviewer)
        view = self.views.pop(item_id, None)
        if view is not None and e is not None and e.open:  # a second reviewer will want it soon
            self.views[item_id] = {**view, "history": [*view["history"], record]}
        # an item outside the window was closed already or ranks below it: the window stays right
        self._wrote(seq)

    def undone(self, item_id: str, standing: set[str], seq: int) -> None:
        """A decision on `item_id` was withdrawn; `standing`: the reviewers whose decisions on it still count."""
        self.views.pop(item_id, None)
        e = self.by_id.get(item_id)
        if e is None:  # it may be open again and belong in the window
            self.forget()
            return
        e.reviewers = set(standing)
        self.head = 0  # it may be open again
        self._wrote(seq)

    def _wrote(self, seq: int) -> None:
        """This process appended decision `seq`: the fingerprint moves with it instead of forcing a reload.

        Only when it directly follows the last decision this order knew of; a gap means someone else decided.
        """
        if self.fingerprint is not None and self.fingerprint[1] == seq - 1:
            self.fingerprint = (self.fingerprint[0], seq, *self.fingerprint[2:])
        else:
            self.forget()


_ORDERS: "weakref.WeakKeyDictionary[Any, ReviewOrder]" = weakref.WeakKeyDictionary()


def order_of(store: Any) -> ReviewOrder:
    """The one order per `Store` object (a second Store on the same file keeps its own and re-syncs)."""
    order = _ORDERS.get(store)
    if order is None:
        order = _ORDERS[store] = ReviewOrder()
    return order
