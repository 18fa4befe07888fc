"""Dashboard, export and the Runs page; and the server sharing the database with a batch process."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time

import pytest
from fastapi.testclient import TestClient

from stillroom.review_ui.app import create_app
from stillroom.settings.review import ReviewSettings
from test_review_ui_helpers import add_users, login, seed_project

ITEM = re.compile(r'data-item-id="([^"]+)"')


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    project, ids = seed_project(tmp_path_factory.mktemp("admin") / "proj", n_items=6)
    return project, ids, add_users(project)


def _decide(client, token, page_html, decision="approve", reason=None):
    data = {"item_id": ITEM.search(page_html).group(1), "decision": decision}
    if reason:
        data["reason_code"] = reason
    r = client.post("/review/decide", data=data, headers={"X-CSRF-Token": token})
    assert r.status_code == 200 and 'class="status error"' not in r.text, r.text
    return r.text


def test_dashboard_counts_decisions_and_draws_charts(project):
    proj, ids, pw = project
    with TestClient(create_app(proj)) as client:
        token = login(client, "ann", pw["ann"])
        page = client.get("/review").text
        page = _decide(client, token, page)
        _decide(client, token, page, "reject", "wrong")
    with TestClient(create_app(proj)) as client:
        login(client, "admin", pw["admin"])
        html = client.get("/dashboard").text
    assert re.search(r'<div class="n">2</div>reviewed', html)
    assert re.search(r'<div class="n">6</div>items in total', html)
    assert "<td>ann</td><td>2</td>" in html
    assert html.count("<svg") == 2 and "<rect" in html  # task mix has a bar even before scoring


def test_export_from_the_dashboard_writes_a_snapshot(project):
    proj, _, pw = project
    with TestClient(create_app(proj)) as client:
        token = login(client, "admin", pw["admin"])
        r = client.post("/export", data={"fmt": "openai", "force": "true"}, headers={"X-CSRF-Token": token})
    assert r.status_code in (200, 400), r.text
    if r.status_code == 200:
        folder = re.search(r"written to (\S+):", r.text).group(1)
        assert (proj.root / "snapshots").is_dir() and folder.startswith(str(proj.root / "snapshots"))
    else:  # the export refused with a message that names the fix, as the CLI would
        assert "error" in r.text


def test_uploads_are_type_and_size_checked(project):
    proj, _, pw = project
    app = create_app(proj, settings=ReviewSettings(upload_max_mb=1))
    with TestClient(app) as client:
        token = login(client, "admin", pw["admin"])
        h = {"X-CSRF-Token": token}
        r = client.post("/runs/upload", headers=h, files=[("files", ("policy.txt", "差旅费标准：每晚500元。".encode(), "text/plain"))])
        assert "uploaded policy.txt" in r.text
        assert (proj.root / "uploads" / "policy.txt").read_text(encoding="utf-8").startswith("差旅费")
        bad = [("fake.pdf", b"MZ\x90\x00 not a pdf"), ("tool.exe", b"MZ"), ("big.txt", b"a" * (1024 * 1024 + 1)),
               ("binary.txt", b"\xff\xfe\x00\xd8 \x00\x00\xff")]
        for name, data in bad:
            r = client.post("/runs/upload", headers=h, files=[("files", (name, data, "application/octet-stream"))])
            assert 'class="error"' in r.text, name
        r = client.post("/runs/upload", headers={**h, "content-length": str(50 * 1024 * 1024)}, content=b"x")
        assert r.status_code == 413
        # a path in the name is cut to its last part: nothing lands outside uploads/
        client.post("/runs/upload", headers=h, files=[("files", ("../escape.txt", b"x", "text/plain"))])
        assert not (proj.root / "escape.txt").exists()
        assert sorted(p.name for p in (proj.root / "uploads").iterdir()) == ["escape.txt", "policy.txt"]


@pytest.mark.slow
def test_a_run_started_from_the_browser_goes_through_the_cli_and_shows_in_status(project):
    proj, _, pw = project
    (proj.root / "uploads").mkdir(exist_ok=True)
    (proj.root / "uploads" / "rules.md").write_text("# 差旅\n\n住宿每晚500元，补贴每天80元。\n", encoding="utf-8")
    with TestClient(create_app(proj)) as client:
        token = login(client, "admin", pw["admin"])
        r = client.post("/runs/start", data={"provider": "openai", "tasks": ["qa"]}, headers={"X-CSRF-Token": token})
        job = re.search(r"started run (\S+):", r.text).group(1)
        deadline = time.monotonic() + 90
        while "— running" in (frag := client.get(f"/runs/{job}").text) and time.monotonic() < deadline:
            time.sleep(0.5)
        # a second run, stopped at once: SIGINT ends it (as Ctrl+C would) and later stages never start
        r = client.post("/runs/start", data={"provider": "openai", "tasks": ["qa"]}, headers={"X-CSRF-Token": token})
        second = re.search(r"started run (\S+):", r.text).group(1)
        assert second != job
        r = client.post(f"/runs/{second}/stop", headers={"X-CSRF-Token": token})
        assert f"stopping run {second}" in r.text or f"run {second} had finished" in r.text
        deadline = time.monotonic() + 30
        while "— running" in client.get(f"/runs/{second}").text and time.monotonic() < deadline:
            time.sleep(0.3)
        assert "— finished" in client.get(f"/runs/{second}").text
    assert "— finished" in frag
    stages = [r[0] for r in proj.store().query("SELECT stage FROM runs ORDER BY started_at")]
    assert "ingest" in stages  # what `stillroom status` lists
    assert proj.store().scalar("SELECT count(*) FROM documents WHERE file_name = 'rules.md'") == 1
    assert "OPENAI_API_KEY" in frag or "key" in frag.lower()  # no key here: distill stops and says so


def test_batch_writer_beside_the_server_loses_nothing(project, tmp_path):
    """A separate process adds queued items in many short transactions while a reviewer decides."""
    proj, _, pw = project
    writer = textwrap.dedent(f"""
        import json, time
        from pathlib import Path
        from stillroom.project import Project
        store = Project(Path({str(proj.root)!r})).store()
        for i in range(20):
            msgs = [{{"role": "user", "content": "batch {{}}".format(i)}}, {{"role": "assistant", "content": "500元"}}]
            with store.transaction() as con:
                con.execute("INSERT INTO items (id, chunk_id, task, origin, question, answer, messages) "
                            "VALUES (?, 'chk-00000000', 'qa', 'distill', ?, '500元', ?)",
                            ["itm_batch_%02d" % i, msgs[0]["content"], json.dumps(msgs)])
                con.execute("INSERT INTO review_queue (item_id, priority, reason) VALUES (?, ?, 'low_score')",
                            ["itm_batch_%02d" % i, 100.0 + i])
            time.sleep(0.02)
    """)
    proc = subprocess.Popen([sys.executable, "-c", writer], stderr=subprocess.PIPE, text=True)
    decided = []
    with TestClient(create_app(proj, settings=ReviewSettings(idle_close_ms=50))) as client:
        token = login(client, "bob", pw["bob"])
        page = client.get("/review").text
        while proc.poll() is None or len(decided) < 12:
            m = ITEM.search(page)
            if not m:
                time.sleep(0.05)
                page = client.get("/review/item").text
                continue
            decided.append(m.group(1))
            page = _decide(client, token, page)
            if len(decided) > 60:
                break
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    stored = [r[0] for r in proj.store().query(
        "SELECT item_id FROM reviews WHERE reviewer = 'bob' AND decision = 'approve' ORDER BY seq")]
    assert stored == decided
    assert any(i.startswith("itm_batch_") for i in decided)  # new items reached the queue without a restart
    assert proj.store().scalar("SELECT count(*) FROM items WHERE id LIKE 'itm_batch_%'") == 20


def test_an_idle_server_hands_the_file_to_a_waiting_process_at_once(project):
    from stillroom.review_ui.db import DbGate

    proj = project[0]
    gate = DbGate(proj.store(), idle_close_s=600)  # would hold it for ten minutes if nobody asked
    try:
        with gate.use() as store:
            store.scalar("SELECT count(*) FROM items")
        assert gate.is_open
        probe = ("import time; from pathlib import Path; from stillroom.project import Project; "
                 f"s = Project(Path({str(proj.root)!r})).store(); t = time.monotonic(); "
                 "s.scalar('SELECT 1'); print(time.monotonic() - t)")
        waited = float(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                                      timeout=60).stdout)
        assert waited < 1.0
        assert not gate.is_open
    finally:
        gate.shutdown()


def test_a_decision_the_database_cannot_take_in_time_is_refused_not_lost(project):
    """While another process holds the file past [review] db_wait_s the reviewer gets 503, and nothing half-done."""
    import fcntl
    import os

    proj, _, pw = project
    app = create_app(proj, settings=ReviewSettings(db_wait_s=0.5, idle_close_ms=50))
    with TestClient(app) as client:
        token = login(client, "admin", pw["admin"])
        item = ITEM.search(client.get("/review").text).group(1)
        time.sleep(0.3)  # the idle server lets go of the file
        fd = os.open(proj.state_dir / "db.lock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # a batch run's long transaction
            r = client.post("/review/decide", data={"item_id": item, "decision": "approve"},
                            headers={"X-CSRF-Token": token})
            assert r.status_code == 503 and "busy" in r.text
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        decided = "SELECT count(*) FROM reviews WHERE item_id = ? AND reviewer = 'admin'"
        assert proj.store().scalar(decided, [item]) == 0
        r = client.post("/review/decide", data={"item_id": item, "decision": "approve"}, headers={"X-CSRF-Token": token})
        assert r.status_code == 200 and proj.store().scalar(decided, [item]) == 1


def test_a_next_item_that_cannot_be_shown_keeps_the_decision_and_says_why(tmp_path):
    proj, ids = seed_project(tmp_path / "proj", n_items=3)
    pw = add_users(proj)
    with proj.store().transaction() as con:  # queued between ids[0] and ids[1], but not in items
        con.execute("INSERT INTO review_queue (item_id, priority, reason) VALUES ('itm_gone', 2.5, 'low_score')")
    with TestClient(create_app(proj)) as client:
        token = login(client, "ann", pw["ann"])
        assert ITEM.search(client.get("/review").text).group(1) == ids[0]
        r = client.post("/review/decide", data={"item_id": ids[0], "decision": "approve"},
                        headers={"X-CSRF-Token": token})
    assert r.status_code == 200 and 'class="status error"' in r.text and "itm_gone" in r.text
    assert proj.store().query("SELECT item_id, decision FROM reviews") == [(ids[0], "approve")]


def test_the_gate_tells_background_work_that_a_request_waits(project):
    import threading

    from stillroom.review_ui.db import DbGate

    gate = DbGate(project[0].store(), idle_close_s=600)
    entered = threading.Event()

    def request():
        with gate.use():
            entered.set()

    try:
        with gate.use():
            assert not gate.waiting  # the holder itself does not count
            waiter = threading.Thread(target=request)
            waiter.start()
            deadline = time.monotonic() + 30
            while not gate.waiting:
                assert time.monotonic() < deadline, "the waiting request was never counted"
                time.sleep(0.01)
            assert not entered.is_set()
        waiter.join(timeout=30)
        assert entered.is_set() and not gate.waiting
    finally:
        gate.shutdown()
