"""A key press (`decide_and_next`) in its fast form: one statement hands the lease on, memory trusted while the file
stays open. Each test checks that the database still arbitrates where memory is out of date."""

from __future__ import annotations

import pytest

from stillroom.curate import reviews
from stillroom.errors import StillroomError
from stillroom.store import Store
from tests.test_curate_flow_helpers import add_doc, add_items, new_project, queue


@pytest.fixture
def queued(tmp_path):
    _, store = new_project(tmp_path / "p")
    ids = add_items(store, add_doc(store, "doc_a"), 4)
    queue(store, ids)  # priority falls with index
    return store, ids


def _leases(store) -> list[tuple]:
    return sorted(store.query("SELECT item_id, lease_owner FROM review_queue WHERE lease_owner IS NOT NULL"))


def test_key_presses_in_one_open_session_append_in_order_and_hand_the_lease_on(queued):
    store, ids = queued
    with store.session():  # the review server keeps the file open like this between requests
        item = reviews.next_item(store, "ann")["item_id"]
        for expected in ids[1:]:
            item = reviews.decide_and_next(store, item, "ann", "approve")["item_id"]
            assert item == expected
            assert _leases(store) == [(expected, "ann")]
        assert reviews.decide_and_next(store, item, "ann", "approve") is None
    rows = store.query("SELECT item_id, seq, revision FROM reviews ORDER BY seq")
    assert rows == [(i, n, 0) for n, i in enumerate(ids, 1)]
    assert store.query("SELECT count(*) FROM audit_log WHERE action = 'approve'")[0][0] == 4


def test_a_change_made_while_the_file_was_closed_is_seen_when_it_reopens(queued):
    store, ids = queued
    with store.session():
        assert reviews.next_item(store, "ann")["item_id"] == ids[0]
    other = Store(store.db_path)  # another process, between two of the server's sessions
    reviews.decide(other, ids[1], "bob", "approve")
    new = add_items(other, None, 1, prefix="urgent")
    with other.transaction() as con:
        con.execute("INSERT INTO review_queue (item_id, priority, reason) VALUES (?, 100, 'hard_fail')", new)
    with store.session():
        nxt = reviews.decide_and_next(store, ids[0], "ann", "approve")
        assert nxt["item_id"] == new[0]
        assert reviews.decide_and_next(store, new[0], "ann", "approve")["item_id"] == ids[2]  # bob decided ids[1]
    assert [r[0] for r in store.query("SELECT seq FROM reviews ORDER BY seq")] == [1, 2, 3]


def test_a_next_item_leased_elsewhere_is_not_taken_and_the_one_after_is(queued):
    store, ids = queued
    other = Store(store.db_path)
    assert reviews.next_item(store, "ann")["item_id"] == ids[0]
    assert reviews.next_item(other, "bob")["item_id"] == ids[1]  # store's memory does not know this lease
    assert reviews.decide_and_next(store, ids[0], "ann", "approve")["item_id"] == ids[2]
    assert _leases(store) == sorted([(ids[1], "bob"), (ids[2], "ann")])
    assert store.query("SELECT item_id, reviewer FROM reviews") == [(ids[0], "ann")]


def test_deciding_an_item_held_by_someone_else_writes_nothing_not_even_the_next_lease(queued):
    store, ids = queued
    other = Store(store.db_path)
    assert reviews.next_item(other, "bob")["item_id"] == ids[0]  # store's memory does not know this lease
    with pytest.raises(StillroomError, match="being reviewed by bob"):
        reviews.decide_and_next(store, ids[0], "ann", "approve")
    assert store.query("SELECT count(*) FROM reviews")[0][0] == 0
    assert _leases(store) == [(ids[0], "bob")]
    assert reviews.next_item(store, "ann")["item_id"] == ids[1]  # and the order is still usable


def test_an_item_outside_the_queue_is_decided_and_the_next_queued_item_leased(queued):
    store, ids = queued
    extra = add_items(store, None, 1, prefix="unqueued")[0]
    nxt = reviews.decide_and_next(store, extra, "ann", "reject", reason_code="wrong")
    assert nxt["item_id"] == ids[0] and _leases(store) == [(ids[0], "ann")]
    assert store.query("SELECT item_id, decision, seq FROM reviews") == [(extra, "reject", 1)]
    with pytest.raises(StillroomError, match="no item"):
        reviews.decide_and_next(store, "itm_missing", "ann", "approve")


def test_the_decision_records_the_revision_current_in_the_database(queued):
    store, ids = queued
    with store.session():
        assert reviews.next_item(store, "ann")["item_id"] == ids[0]
        reviews.edit(store, ids[0], "ann", answer="每晚500元（含早餐）。")
        reviews.decide_and_next(store, ids[0], "ann", "approve")
    assert store.query("SELECT decision, revision FROM reviews ORDER BY seq") == [("edit", 1), ("approve", 1)]
    detail = store.scalar("SELECT detail FROM audit_log WHERE action = 'approve'")
    assert '"revision": 1' in detail
