"""Double review over HTTP (two reviewers, one server), agreement on the dashboard, and the supporting-span marks."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from stillroom.review_ui.app import create_app
from stillroom.review_ui.dashboard import agreement_of
from stillroom.settings.review import ReviewSettings
from test_review_ui_helpers import CHUNK_ID, add_users, login, seed_project

ITEM = re.compile(r'data-item-id="([^"]+)"')


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    project, ids = seed_project(tmp_path_factory.mktemp("double") / "proj", n_items=5)
    return project, ids, add_users(project)


def _decide(client, token, item_id, decision="approve", reason=None) -> str:
    data = {"item_id": item_id, "decision": decision, **({"reason_code": reason} if reason else {})}
    r = client.post("/review/decide", data=data, headers={"X-CSRF-Token": token})
    assert r.status_code == 200 and 'class="status error"' not in r.text, r.text
    return ITEM.search(r.text).group(1) if ITEM.search(r.text) else None


def test_a_double_review_item_waits_for_a_second_reviewer_and_agreement_is_shown(project):
    proj, ids, pw = project
    app = create_app(proj, settings=ReviewSettings(double_review_share=1.0))  # every item drawn
    with TestClient(app) as ann, TestClient(app) as bob:
        ann_token, bob_token = login(ann, "ann", pw["ann"]), login(bob, "bob", pw["bob"])
        first = ITEM.search(ann.get("/review").text).group(1)
        second = ITEM.search(bob.get("/review").text).group(1)
        assert (first, second) == (ids[0], ids[1])  # never the same item at the same time
        ann_next = _decide(ann, ann_token, first)
        assert ann_next == ids[2]  # ann never gets ids[0] again
        bob_next = _decide(bob, bob_token, second, "reject", "wrong")
        assert bob_next == ids[0]  # ann's item stays queued for a second, different reviewer
        _decide(bob, bob_token, ids[0])  # agrees with ann
        _decide(ann, ann_token, ids[2])
        assert ITEM.search(ann.get("/review/item").text).group(1) == ids[1]  # bob's reject, for ann to second
        _decide(ann, ann_token, ids[1])  # disagrees with bob
        # both decided ids[0] and ids[1]: nobody is offered them again
        for page in (ann.get("/review/item").text, bob.get("/review/item").text):
            assert ITEM.search(page).group(1) not in (ids[0], ids[1])
    standing = proj.store().query("SELECT item_id, count(DISTINCT reviewer) FROM reviews "
                                  "WHERE decision IN ('approve', 'reject') GROUP BY item_id ORDER BY item_id")
    assert dict(standing)[ids[0]] == 2 and dict(standing)[ids[1]] == 2
    with TestClient(app) as admin:
        login(admin, "admin", pw["admin"])
        html = admin.get("/dashboard").text
    card = re.search(r'<div class="card" id="agreement">(.*?)</div>\s*</div>', html, re.S).group(1)
    # ids[0]: approve/approve; ids[1]: reject/approve — 50 %; the first reviewers' marginals give κ 0
    assert "50%" in card and "2 double-reviewed" in card and "κ 0.00" in card
    assert "waiting for a second reviewer" in card  # ids[2]: only ann so far


def test_cohens_kappa_matches_the_textbook_example():
    # Wikipedia's example: 50 proposals, two readers; p_o = 0.7, p_e = 0.5, κ = 0.4
    k = agreement_of({("yes", "yes"): 20, ("yes", "no"): 5, ("no", "yes"): 10, ("no", "no"): 15})
    assert k["n_items"] == 50 and k["agreed"] == 35 and k["rate"] == pytest.approx(0.7)
    assert k["kappa"] == pytest.approx(0.4)
    assert agreement_of({("approve", "approve"): 3})["kappa"] is None  # one category only: kappa says nothing
    assert agreement_of({})["rate"] is None


def test_the_supporting_sentence_is_marked_and_html_in_the_source_stays_inert(tmp_path):
    hostile = "<img src=x onerror=alert(1)>前言。员工出差住宿标准为每晚500元。<script>alert(2)</script>附则。"
    project, _ = seed_project(tmp_path / "p", n_items=0)
    with project.store().transaction() as con:
        con.execute("UPDATE chunks SET text = ? WHERE id = ?", [hostile, CHUNK_ID])
    messages = [{"role": "user", "content": "住宿标准？"}, {"role": "assistant", "content": "住宿标准为每晚500元。"}]
    with project.store().transaction() as con:
        con.execute("INSERT INTO items (id, chunk_id, task, origin, question, answer, messages) VALUES "
                    "('itm_support', ?, 'qa', 'distill', '住宿标准？', '住宿标准为每晚500元。', ?)",
                    [CHUNK_ID, json.dumps(messages, ensure_ascii=False)])
        con.execute("INSERT INTO review_queue (item_id, priority, reason) VALUES ('itm_support', 1, 'low_score')")
    pw = add_users(project)
    with TestClient(create_app(project)) as client:
        login(client, "ann", pw["ann"])
        page = client.get("/review").text
    chunk = re.search(r'<div class="chunk">(.*?)</div>', page, re.S).group(1)
    assert '<mark class="support" title="supports the answer">员工出差住宿标准为每晚</mark>' in chunk
    assert '<mark class="support found" title="supports the answer; 500元">500元</mark>' in chunk
    assert "<script>" not in page and "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;前言。" in chunk and "&lt;script&gt;alert(2)&lt;/script&gt;" in chunk


def test_progress_counts_reviewed_waiting_and_second_reviews_in_one_pass(tmp_path):
    from stillroom.curate import reviews
    from stillroom.review_ui.dashboard import progress

    proj, ids = seed_project(tmp_path / "proj", n_items=5)
    store = proj.store()
    reviews.decide(store, ids[0], "ann", "approve")
    reviews.decide(store, ids[1], "ann", "approve")
    reviews.decide(store, ids[1], "bob", "reject", reason_code="wrong")
    reviews.decide(store, ids[2], "ann", "approve")
    reviews.undo(store, "ann")  # withdraws ids[2]: waiting again
    drawn = sum(reviews.reviews_needed(i, 0.5) == 2 for i in ids[:1])  # ids[0]: one reviewer so far
    assert progress(store) == {"total": 5, "queued": 3, "reviewed": 2, "second_review": 0}
    assert progress(store, 0.5)["second_review"] == drawn
    assert progress(store, 1.0)["second_review"] == 1
