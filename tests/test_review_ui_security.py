"""Who may do what in the review app: sessions, CSRF, escaping, roles, wrong passwords."""

from __future__ import annotations

import re
import statistics
import time

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount

from stillroom.review_ui import users
from stillroom.review_ui.app import create_app
from stillroom.review_ui.auth import Sessions
from test_review_ui_helpers import add_users, login, seed_project

ADMIN_PAGES = ["/dashboard", "/runs", "/runs/20260101-000000"]
ADMIN_POSTS = ["/export", "/runs/start", "/runs/20260101-000000/stop"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """Shared by the module (argon2 hashing is slow on purpose); each test gets a fresh app."""
    root = tmp_path_factory.mktemp("security") / "proj"
    project, ids = seed_project(root, n_items=4, text="<script>alert(1)</script><img src=x onerror=alert(2)>")
    passwords = add_users(project)
    passwords["carl"] = users.add_user(project.store(), "carl")
    return project, ids, passwords


@pytest.fixture
def app(project):
    return create_app(project[0])


def _routes(routes) -> list[tuple[str, str]]:
    """Every (method, path) the app serves; included routers (no prefixes here) are walked too."""
    out = []
    for route in routes:
        if hasattr(route, "original_router"):  # FastAPI's wrapper for include_router
            out += _routes(route.original_router.routes)
        elif isinstance(route, APIRoute) and route.path != "/login":
            path = re.sub(r"\{[^}]+\}", "x", route.path)
            out += [(m, path) for m in sorted(route.methods)]
        else:
            assert isinstance(route, (Mount, APIRoute)), f"unexpected route type {route!r}"
    return out


def test_every_route_refuses_a_request_without_a_session(app):
    with TestClient(app) as client:
        routes = _routes(app.routes)
        assert {("GET", "/review"), ("POST", "/review/decide"), ("GET", "/dashboard")} <= set(routes)
        for method, path in routes:
            r = client.request(method, path, follow_redirects=False)
            assert r.status_code == 401, (method, path, r.status_code)
            page = client.request(method, path, headers={"accept": "text/html"}, follow_redirects=False)
            assert page.status_code in (303, 401) and (page.status_code == 401 or page.headers["location"] == "/login")
        # a forged cookie is no session either
        client.cookies.set("stillroom_session", "forged")
        assert client.get("/review", follow_redirects=False).status_code == 401


def test_state_changes_need_the_session_csrf_token(app, project):
    _, ids, pw = project
    with TestClient(app) as client:
        token = login(client, "ann", pw["ann"])
        for headers in ({}, {"X-CSRF-Token": "wrong"}):
            r = client.post("/review/decide", data={"item_id": ids[0], "decision": "approve"}, headers=headers)
            assert r.status_code == 403
        r = client.post("/logout", headers={})
        assert r.status_code == 403
        assert client.get("/review").status_code == 200  # still logged in: the forged logout did nothing
        assert client.post("/logout", headers={"X-CSRF-Token": token}).status_code == 204
        assert client.get("/review", follow_redirects=False).status_code == 401


def test_login_form_needs_its_csrf_token(app, project):
    with TestClient(app) as client:
        client.get("/login")
        r = client.post("/login", data={"name": "ann", "password": project[2]["ann"], "csrf": "nope"})
        assert r.status_code == 403
        assert "stillroom_session" not in client.cookies


def test_session_cookie_flags(app, project):
    with TestClient(app) as client:
        page = client.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        r = client.post("/login", data={"name": "ann", "password": project[2]["ann"], "csrf": token},
                        follow_redirects=False)
        cookie = [v for k, v in r.headers.multi_items() if k == "set-cookie" and "stillroom_session" in v][0]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
        assert "script-src 'self'" in r.headers["content-security-policy"]
    with TestClient(app, base_url="https://review.example") as client:
        page = client.get("/login")
        assert "Secure" in page.headers["set-cookie"]


def test_item_text_with_script_renders_inert(app, project):
    _, ids, pw = project
    with TestClient(app) as client:
        login(client, "ann", pw["ann"])
        page = client.get("/review").text
        assert ids[0] in page  # the hostile item is the first in the queue
        assert "<script>alert" not in page and "<img src=x" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "onerror=alert(2)&gt;" in page


def test_reviewer_cannot_reach_admin_pages(app, project):
    pw = project[2]
    with TestClient(app) as client:
        token = login(client, "ann", pw["ann"])
        for path in ADMIN_PAGES:
            assert client.get(path).status_code == 403, path
        for path in ADMIN_POSTS:
            assert client.post(path, headers={"X-CSRF-Token": token}, data={"fmt": "openai"}).status_code == 403, path
        assert "/dashboard" not in client.get("/review").text
    with TestClient(app) as client:
        login(client, "admin", pw["admin"])
        for path in ("/dashboard", "/runs"):
            assert client.get(path).status_code == 200, path
        assert client.get("/runs/20260101-000000").status_code == 404


def _login_attempt(client, name, password):
    page = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return client.post("/login", data={"name": name, "password": password, "csrf": token}, follow_redirects=False)


def test_wrong_password_is_rejected_then_rate_limited(app, project):
    pw = project[2]
    with TestClient(app) as client:
        r = _login_attempt(client, "ann", "not-her-password")
        assert r.status_code == 401 and "wrong name or password" in r.text
        assert _login_attempt(client, "nobody", "whatever").status_code == 401
        for _ in range(4):
            assert _login_attempt(client, "ann", "still-wrong").status_code == 401
        r = _login_attempt(client, "ann", pw["ann"])  # right password, but too many wrong ones just now
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert _login_attempt(client, "bob", pw["bob"]).status_code == 303  # others are not locked out


def test_a_disabled_user_is_logged_out_and_cannot_log_in(app, project, monkeypatch):
    from stillroom.review_ui import app as app_module

    monkeypatch.setattr(app_module, "RECHECK_S", 0.0)  # check the account on every request
    proj, _, pw = project
    with TestClient(app) as client:
        login(client, "carl", pw["carl"])
        assert client.get("/review").status_code == 200
        users.disable_user(proj.store(), "carl")
        assert client.get("/review", follow_redirects=False).status_code == 401
        assert _login_attempt(client, "carl", pw["carl"]).status_code == 401


def test_unknown_name_costs_as_much_as_a_wrong_password(project):
    """No timing oracle for which names exist: both paths run one argon2 verification."""
    proj = project[0]
    row = users.lookup(proj.store(), "ann")
    users.check_password(None, "warm-up")

    def median_s(r):
        times = []
        for _ in range(3):
            t = time.perf_counter()
            assert users.check_password(r, "wrong") is None
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    known, unknown = median_s(row), median_s(None)
    assert 0.33 < unknown / known < 3


def test_sessions_expire_when_idle_and_at_their_age_limit():
    idle = Sessions(idle_s=0.05, max_s=60)
    token = idle.create("ann", False)
    assert idle.get(token).user == "ann"
    time.sleep(0.08)
    assert idle.get(token) is None
    aged = Sessions(idle_s=60, max_s=0.1)
    token = aged.create("ann", False)
    time.sleep(0.03)
    assert aged.get(token) is not None  # busy, and young enough
    time.sleep(0.09)
    assert aged.get(token) is None  # busy, but past its age limit
