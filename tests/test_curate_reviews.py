"""The decisions API the review UI calls: leases, decisions appended, edits as revisions, undo, audit log."""

from __future__ import annotations

import time

import pytest

from stillroom.curate import reviews
from stillroom.errors import StillroomError, UsageError
from tests.test_curate_flow_helpers import add_doc, add_items, new_project, queue, status_of


@pytest.fixture
def queued(tmp_path):
    project, store = new_project(tmp_path / "p")
    chunk = add_doc(store, "doc_a", "第二章 差旅费\n员工出差住宿标准为每晚500元，交通补贴每天80元。")
    ids = add_items(store, chunk, 4)
    queue(store, ids)  # priority falls with index
    return project, store, ids


def test_two_reviewers_never_get_the_same_item_and_a_reload_keeps_the_lease(queued):
    _, store, ids = queued
    a = reviews.next_item(store, "ann")
    b = reviews.next_item(store, "bob")
    assert a["item_id"] == ids[0] and b["item_id"] == ids[1]
    assert reviews.next_item(store, "ann")["item_id"] == ids[0]  # a reload shows the same item
    with pytest.raises(StillroomError, match="being reviewed by ann"):
        reviews.decide(store, ids[0], "bob", "approve")


def test_an_expired_lease_returns_the_item_to_the_queue(queued):
    _, store, ids = queued
    assert reviews.next_item(store, "ann", lease_s=1.5)["item_id"] == ids[0]
    assert reviews.next_item(store, "bob", lease_s=5)["item_id"] == ids[1]
    reviews.release(store, ids[1], "bob")
    time.sleep(1.6)
    # ann's lease ran out; bob skipped ids[1] a moment ago, so he gets ann's item
    assert reviews.next_item(store, "bob", lease_s=5)["item_id"] == ids[0]


def test_decisions_are_appended_and_the_queue_moves_on(queued):
    project, store, ids = queued
    item = reviews.next_item(store, "ann")["item_id"]
    reviews.decide(store, item, "ann", "approve")
    nxt = reviews.next_item(store, "ann")["item_id"]
    assert nxt == ids[1]
    reviews.decide(store, nxt, "ann", "reject", reason_code="wrong", note="500 is per night")
    # a second decision on the same item is a new row, the first is kept
    reviews.decide(store, item, "ann", "reject", reason_code="unsupported")
    rows = store.query("SELECT item_id, decision, reason_code FROM reviews ORDER BY seq")
    assert rows == [(ids[0], "approve", None), (ids[1], "reject", "wrong"), (ids[0], "reject", "unsupported")]
    assert status_of(store, project.settings, ids[0]) == "rejected"
    actions = [r[0] for r in store.query("SELECT action FROM audit_log ORDER BY created_at")]
    assert actions == ["approve", "reject", "reject"]
    with pytest.raises(UsageError, match="reason code"):
        reviews.decide(store, ids[2], "ann", "reject")
    with pytest.raises(UsageError, match="approve or reject"):
        reviews.decide(store, ids[2], "ann", "maybe")


def test_undo_withdraws_the_last_decision_and_gives_the_item_back(queued):
    project, store, ids = queued
    reviews.decide(store, reviews.next_item(store, "ann")["item_id"], "ann", "approve")
    reviews.decide(store, reviews.next_item(store, "ann")["item_id"], "ann", "approve")
    reviews.next_item(store, "ann")  # now holds ids[2]
    assert reviews.undo(store, "ann") == ids[1]
    assert reviews.next_item(store, "ann")["item_id"] == ids[1]
    assert status_of(store, project.settings, ids[1]) == "unscored"
    assert status_of(store, project.settings, ids[0]) == "approved"
    assert reviews.undo(store, "ann") == ids[0]
    assert reviews.undo(store, "ann") is None
    decisions = [r[0] for r in store.query("SELECT decision FROM reviews ORDER BY seq")]
    assert decisions == ["approve", "approve", "undo", "undo"]


def test_edit_is_a_new_revision_scored_at_once(queued):
    _, store, ids = queued
    item = reviews.next_item(store, "ann")["item_id"]
    assert reviews.edit(store, item, "ann", answer="每晚9999元。") == 1
    assert reviews.edit(store, item, "ann", answer="每晚500元。") == 2
    assert store.scalar("SELECT answer FROM items WHERE id = ?", [item]) == "每晚500元。"
    revs = store.query("SELECT revision, answer FROM item_revisions WHERE item_id = ? ORDER BY revision", [item])
    assert revs == [(1, "每晚9999元。"), (2, "每晚500元。")]
    hard = dict(store.query("SELECT revision, hard_fail FROM scores WHERE item_id = ? AND scorer = 'numeric_fidelity'",
                            [item]))
    assert hard == {1: True, 2: False}
    view = reviews.item_view(store, item)
    assert view["revision"] == 2 and view["answer"] == "每晚500元。"
    assert view["document_name"] == "doc_a.txt" and view["heading_path"] == "第二章" and view["page"] == 1
    assert [f["source_span"] is not None for f in view["figures"]] == [True]
    assert {s["scorer"] for s in view["scores"]} >= {"overall", "numeric_fidelity"}
    assert [h["decision"] for h in view["history"]] == ["edit", "edit"]


def test_item_view_of_an_unscored_item_still_marks_figures_missing_from_the_source(queued):
    _, store, ids = queued
    reviews.edit(store, ids[3], "ann", answer="每晚500元，另有补贴120元。", question="住宿和补贴标准？")
    view = reviews.item_view(store, ids[3])
    assert view["question"] == "住宿和补贴标准？"
    assert {f["text"]: f["source_span"] is None for f in view["figures"]} == {"500元": False, "120元": True}
    with pytest.raises(StillroomError, match="no item"):
        reviews.item_view(store, "itm_nope")


def test_double_review_lets_a_second_reviewer_see_a_decided_item(queued):
    _, store, ids = queued
    reviews.decide(store, ids[0], "ann", "approve")
    assert reviews.next_item(store, "bob")["item_id"] == ids[1]
    reviews.release(store, ids[1], "bob")
    assert reviews.next_item(store, "cy", reviews_per_item=2)["item_id"] == ids[0]
