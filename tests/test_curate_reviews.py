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


def test_a_decided_item_leaves_the_queue_without_double_review(queued):
    _, store, ids = queued
    reviews.decide(store, ids[0], "ann", "approve")
    assert reviews.next_item(store, "bob")["item_id"] == ids[1]
    reviews.release(store, ids[1], "bob")
    assert reviews.next_item(store, "cy")["item_id"] == ids[1]


def test_double_review_keeps_an_item_queued_until_two_different_reviewers_decided(queued):
    _, store, ids = queued
    share = 1.0  # every item is drawn for double review
    take = lambda who: reviews.next_item(store, who, double_share=share)["item_id"]  # noqa: E731
    assert take("ann") == ids[0]
    reviews.decide(store, ids[0], "ann", "approve")
    assert take("ann") == ids[1]  # never the same item twice for ann
    assert take("bob") == ids[0]  # but it stays in the queue for a second reviewer
    reviews.decide(store, ids[0], "bob", "reject", reason_code="wrong")
    assert take("cy") == ids[2]  # two reviewers decided it: done
    # an undo reopens it for the one who withdrew
    assert reviews.undo(store, "bob") == ids[0]
    assert take("bob") == ids[0]
    standing = store.query("SELECT reviewer FROM reviews WHERE item_id = ? AND decision IN ('approve', 'reject') "
                           "ORDER BY seq", [ids[0]])
    assert standing == [("ann",), ("bob",)]


def test_the_double_review_draw_is_stable_and_near_the_share(tmp_path):
    import duckdb

    ids = [f"itm_{i:05d}" for i in range(4000)]
    drawn = [i for i in ids if reviews.reviews_needed(i, 0.1) == 2]
    assert 0.08 < len(drawn) / len(ids) < 0.12
    assert all(reviews.reviews_needed(i, 0.0) == 1 for i in ids[:50])
    assert all(reviews.reviews_needed(i, 1.0) == 2 for i in ids[:50])
    # the queue's SQL draws the same items as Python
    from stillroom.curate.review_order import drawn as drawn_sql, threshold

    sql = duckdb.execute(f"SELECT i FROM (SELECT unnest({ids!r}) AS i) WHERE {drawn_sql('i')} ORDER BY i",
                         {"threshold": threshold(0.1)}).fetchall()
    assert [r[0] for r in sql] == drawn


def test_a_second_store_on_the_same_file_never_leases_a_held_item_and_sees_new_decisions(queued):
    """Two Store objects stand for two processes: each keeps its own order in memory, the database arbitrates."""
    from stillroom.store import Store

    _, store, ids = queued
    other = Store(store.db_path)
    assert reviews.next_item(store, "ann")["item_id"] == ids[0]
    assert reviews.next_item(other, "bob")["item_id"] == ids[1]  # other's order did not know ann's lease
    reviews.decide(other, ids[1], "bob", "approve")
    reviews.decide(store, ids[0], "ann", "approve")
    assert reviews.next_item(store, "cy")["item_id"] == ids[2]  # bob's decision, made elsewhere, is seen
    new = add_items(other, None, 1, prefix="urgent")
    with other.transaction() as con:
        con.execute("INSERT INTO review_queue (item_id, priority, reason) VALUES (?, 100, 'hard_fail')", new)
    assert reviews.next_item(store, "dan")["item_id"] == new[0]  # queued elsewhere, offered at once


def test_views_fetched_ahead_follow_changes_made_elsewhere(queued):
    from stillroom.store import Store

    _, store, ids = queued
    first = reviews.next_item(store, "ann", with_view=True)
    assert first["view"]["item_id"] == ids[0] and first["view"]["revision"] == 0
    assert reviews.prefetch(store) == 0  # the first fetch brought the next items' views along
    reviews.edit(Store(store.db_path), ids[1], "cy", answer="每晚500元（含早餐）。")  # another process edits
    second = reviews.next_item(store, "bob", with_view=True)["view"]
    assert second["item_id"] == ids[1] and second["revision"] == 1 and second["answer"] == "每晚500元（含早餐）。"


def test_decide_and_next_records_and_leases_in_one_go_or_writes_nothing(queued):
    from stillroom.store import Store

    _, store, ids = queued
    assert reviews.next_item(store, "ann")["item_id"] == ids[0]
    assert reviews.next_item(store, "bob")["item_id"] == ids[1]
    with pytest.raises(StillroomError, match="being reviewed by bob"):
        reviews.decide_and_next(store, ids[1], "ann", "approve")
    assert store.query("SELECT count(*) FROM reviews")[0][0] == 0
    reviews.decide(Store(store.db_path), ids[3], "cy", "approve")  # elsewhere: seq 1
    nxt = reviews.decide_and_next(store, ids[0], "ann", "reject", reason_code="wrong", with_view=True)
    assert nxt["item_id"] == ids[2] and nxt["view"]["item_id"] == ids[2]
    rows = store.query("SELECT item_id, reviewer, decision, seq FROM reviews ORDER BY seq")
    assert rows == [(ids[3], "cy", "approve", 1), (ids[0], "ann", "reject", 2)]
    assert store.query("SELECT lease_owner FROM review_queue WHERE item_id = ?", [ids[2]]) == [("ann",)]


def test_a_double_review_items_view_stays_ready_for_the_second_reviewer_with_the_first_decision(queued):
    _, store, ids = queued
    first = reviews.next_item(store, "ann", double_share=1.0, with_view=True)
    reviews.decide_and_next(store, first["item_id"], "ann", "approve", double_share=1.0)
    second = reviews.next_item(store, "bob", double_share=1.0, with_view=True)
    assert second["item_id"] == ids[0]
    assert [(h["reviewer"], h["decision"]) for h in second["view"]["history"]] == [("ann", "approve")]
    assert second["view"]["history"][0]["reviewer"] == reviews.item_view(store, ids[0])["history"][0]["reviewer"]


def test_a_next_item_whose_view_cannot_be_built_does_not_take_the_decision_before_it_along(queued):
    _, store, ids = queued
    with store.transaction() as con:  # queued, but not in items (a queue left from a rebuilt store)
        con.execute("INSERT INTO review_queue (item_id, priority, reason) VALUES ('itm_gone', 3.5, 'low_score')")
    assert reviews.next_item(store, "ann", with_view=True)["item_id"] == ids[0]
    with pytest.raises(StillroomError, match="itm_gone"):
        reviews.decide_and_next(store, ids[0], "ann", "approve", with_view=True)
    assert store.query("SELECT item_id, reviewer, decision FROM reviews") == [(ids[0], "ann", "approve")]
    # the item that cannot be shown was given back as a skip: the next call moves on, rather than renewing a
    # lease on it and failing again at every reload
    assert reviews.next_item(store, "ann", with_view=True)["view"]["item_id"] == ids[1]
    assert store.query("SELECT actor, action, subject FROM audit_log WHERE action = 'release'") == [
        ("ann", "release", "itm_gone")]
    nxt = reviews.decide_and_next(store, ids[1], "ann", "approve", with_view=True)
    assert nxt["view"]["item_id"] == ids[2]


def test_a_lease_held_in_memory_is_checked_against_the_database(queued):
    from stillroom.store import Store

    _, store, ids = queued
    other = Store(store.db_path)  # another process: it frees ann's item and bob takes it
    assert reviews.next_item(store, "ann")["item_id"] == ids[0]
    reviews.release(other, ids[0], "ann")
    assert reviews.next_item(other, "bob")["item_id"] == ids[0]
    assert reviews.next_item(store, "ann")["item_id"] == ids[1]  # not bob's item, which memory still gave ann
    leases = store.query("SELECT item_id, lease_owner FROM review_queue WHERE lease_owner IS NOT NULL ORDER BY 1")
    assert sorted(leases) == sorted([(ids[0], "bob"), (ids[1], "ann")])


def test_a_reload_renews_the_lease(queued):
    _, store, ids = queued
    first = reviews.next_item(store, "ann", lease_s=60)["lease_expires"]
    again = reviews.next_item(store, "ann", lease_s=600)
    assert again["item_id"] == ids[0] and again["lease_expires"] > first
    assert store.query("SELECT lease_expires FROM review_queue WHERE item_id = ?", [ids[0]]) == [
        (again["lease_expires"],)]


def test_views_are_fetched_ahead_a_slice_at_a_time(tmp_path):
    from stillroom.curate.review_order import VIEW_SLICE
    from tests.test_curate_flow_helpers import add_doc, add_items, new_project, queue

    _, store = new_project(tmp_path / "p")
    ids = add_items(store, add_doc(store, "doc_a"), 200)
    queue(store, ids)
    reviews.next_item(store, "ann", with_view=True)  # a miss: the first slice comes with it
    slices = [reviews.prefetch(store) for _ in range(4)]
    assert slices == [VIEW_SLICE, VIEW_SLICE, 200 - 3 * VIEW_SLICE, 0]
    assert reviews.next_item(store, "bob", with_view=True)["view"]["support"]  # the supporting sentence, precomputed


def test_an_item_with_unreadable_data_is_shown_with_the_problem_and_its_batch_is_not_lost(queued):
    """Stored data of the wrong shape (messages an object; figure evidence without spans, as an older scorer might
    have left it) makes that one item's view say what is wrong, to reject or edit; the views fetched with it are
    whole (a KeyError used to fail the whole batch), and the reviewer is not stuck on a lease."""
    from stillroom.review_ui.views_review import view_model

    _, store, ids = queued
    with store.transaction() as con:
        con.execute("UPDATE items SET messages = '{\"role\": \"user\"}' WHERE id = ?", [ids[0]])
        con.execute("INSERT INTO scores (item_id, revision, scorer, scorer_version, value, evidence) VALUES "
                    "(?, 0, 'numeric_fidelity', 0, 1.0, '{\"figures\": [{\"text\": \"500元\"}]}')", [ids[2]])
    first = reviews.next_item(store, "ann", with_view=True)
    assert first["item_id"] == ids[0]
    assert ids[0] in first["view"]["problem"] and "messages is not a list" in first["view"]["problem"]
    assert first["view"]["answer"] and view_model(first["view"])["answer_pieces"]  # shown as stored
    nxt = reviews.decide_and_next(store, ids[0], "ann", "reject", reason_code="wrong", with_view=True)
    assert nxt["item_id"] == ids[1] and nxt["view"]["problem"] is None
    assert [f["text"] for f in nxt["view"]["figures"]]  # the batch's good views are whole
    third = reviews.decide_and_next(store, ids[1], "ann", "approve", with_view=True)
    assert third["item_id"] == ids[2] and "KeyError" in third["view"]["problem"]
    assert store.query("SELECT item_id, decision FROM reviews ORDER BY seq") == [(ids[0], "reject"), (ids[1], "approve")]
