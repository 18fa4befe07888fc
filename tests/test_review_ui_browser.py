"""The review app in a real browser (Debian's Chromium, headless), driven by the keyboard only."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import threading
import time
from pathlib import Path

import pytest

from stillroom.curate.state import utcnow
from stillroom.review_ui.app import create_app
from stillroom.settings.review import ReviewSettings
from stillroom.review_ui.users import add_user
from test_review_ui_helpers import add_users, enqueue_item, seed_project

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
LEASE_S = 5  # short, so the killed-browser test waits little; long enough for a loaded CI box

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing: apt-get install -y chromium"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A real server on loopback, over a project with 40 queued items and three users."""
    import uvicorn

    project, ids = seed_project(tmp_path_factory.mktemp("browser") / "proj", n_items=40)
    passwords = add_users(project)
    passwords["dan"] = add_user(project.store(), "dan")  # decides nothing before the lease test
    # holds nothing before the lease test: ann may still hold a live lease from the keyboard test, and a
    # reviewer who holds one is given that item back first
    passwords["kim"] = add_user(project.store(), "kim")
    app = create_app(project, settings=ReviewSettings(lease_s=LEASE_S, idle_close_ms=100))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "review server did not start"
        time.sleep(0.05)
    yield {"url": f"http://127.0.0.1:{port}", "project": project, "ids": ids, "pw": passwords}
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright):
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
    yield b
    b.close()


def _login(page, served, name):
    page.goto(served["url"] + "/review")
    assert page.url.endswith("/login")
    # filled by selector, not typed after the autofocus: on a loaded machine the keys could arrive before the
    # focus did and the form went out without a name (a login "timeout" in CI, twice)
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", served["pw"][name])
    page.press("input[name=password]", "Enter")
    try:
        page.wait_for_url("**/review")
    except Exception as e:  # noqa: BLE001 - say what the login page said instead
        raise AssertionError(f"login as {name} did not reach /review: {page.url} {page.inner_text('body')[:300]!r}") from e


def _current(page) -> str | None:
    el = page.query_selector("#item article.item")
    return el.get_attribute("data-item-id") if el else None


def _press_and_wait(page, key: str) -> float:
    """Press `key` and wait for the item shown to change; returns the seconds it took."""
    before = page.eval_on_selector("#item", "el => el.innerHTML")
    t = time.perf_counter()
    page.keyboard.press(key)
    page.wait_for_function("before => document.querySelector('#item').innerHTML !== before"
                           " && document.body.dataset.busy !== '1'", arg=before)
    return time.perf_counter() - t


def _decisions(served, reviewer) -> list[tuple[str, str]]:
    return served["project"].store().query(
        "SELECT item_id, decision FROM reviews WHERE reviewer = ? ORDER BY seq", [reviewer])


def test_review_twenty_items_by_keyboard_then_edit_and_undo(served, browser):
    context = browser.new_context()
    page = context.new_page()
    _login(page, served, "ann")
    seen, latencies = [], []
    for i in range(20):
        seen.append(_current(page))
        if i % 5 == 4:
            page.keyboard.press("r")
            latencies.append(_press_and_wait(page, "2"))
        else:
            latencies.append(_press_and_wait(page, "a"))
    decided = _decisions(served, "ann")
    assert sorted(d[0] for d in decided) == sorted(seen) and len(set(seen)) == 20
    assert [d[1] for d in decided].count("reject") == 4
    print(f"key press → next item: median {statistics.median(latencies) * 1000:.0f} ms")

    # ? shows the help; s gives the item back without a decision, and it is not offered again at once
    page.keyboard.press("?")
    assert page.is_visible("#help") and "undo your last decision" in page.inner_text("#help")
    page.keyboard.press("?")
    assert not page.is_visible("#help")
    skipped = _current(page)
    _press_and_wait(page, "s")
    assert _current(page) not in (skipped, None)
    assert len(_decisions(served, "ann")) == 20

    # edit: an invented figure is flagged before saving; a second Ctrl+Enter saves a new revision
    item = _current(page)
    page.keyboard.press("e")
    page.fill("#answer-edit", "每晚9999元。")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#edit-warning:not([hidden])")
    assert "9999" in page.inner_text("#edit-warning")
    _press_and_wait(page, "Control+Enter")
    assert "revision 1" in page.inner_text("#item")
    revisions = served["project"].store().query(
        "SELECT revision, answer FROM item_revisions WHERE item_id = ?", [item])
    assert revisions == [(1, "每晚9999元。")]
    original = served["project"].store().scalar("SELECT answer FROM items WHERE id = ?", [item])
    assert original == "每晚500元。"

    # undo: the last approval is withdrawn and the item comes back
    _press_and_wait(page, "a")
    _press_and_wait(page, "u")
    assert _current(page) == item
    assert _decisions(served, "ann")[-1][1] == "undo"

    page.click("nav button")  # log out
    page.wait_for_url("**/login")
    page.goto(served["url"] + "/review")
    assert page.url.endswith("/login")
    context.close()


def test_two_reviewers_never_see_the_same_item(served, browser):
    """At every moment the two reviewers hold different items (double review may show one later)."""
    pages = [browser.new_context().new_page() for _ in range(2)]
    for page, name in zip(pages, ("bob", "admin")):
        _login(page, served, name)
    shown = []
    for _ in range(5):
        for page in pages:
            current = [_current(p) for p in pages]
            assert None not in current and current[0] != current[1], current
            shown.append(current)
            _press_and_wait(page, "a")
    assert len({item for pair in shown for item in pair}) >= 6
    for page in pages:
        page.context.close()


def test_a_killed_browsers_lease_returns_the_item(served, browser, playwright, tmp_path):
    """Chromium is SIGKILLed while it holds an item; after the lease runs out another reviewer gets it."""
    urgent = enqueue_item(served["project"], 1000.0, "最急的问题：交通补贴每天多少？", "每天80元。")
    port = _free_port()
    proc = subprocess.Popen(
        [str(CHROMIUM), "--headless", f"--remote-debugging-port={port}", f"--user-data-dir={tmp_path}", *ARGS,
         "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        doomed = None
        for _ in range(100):
            try:
                doomed = playwright.chromium.connect_over_cdp(f"http://127.0.0.1:{port}")
                break
            except Exception:  # noqa: BLE001 - Playwright raises a bare Error until the port is up
                time.sleep(0.1)
        assert doomed is not None, "could not connect to the launched Chromium"
        page = doomed.contexts[0].new_page()
        _login(page, served, "kim")
        held = _current(page)
        assert held == urgent
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    owner, expires = served["project"].store().query(
        "SELECT lease_owner, lease_expires FROM review_queue WHERE item_id = ?", [held])[0]
    assert owner == "kim"  # the killed browser still holds it, until the lease runs out
    other = browser.new_context().new_page()
    _login(other, served, "dan")
    time.sleep(max(0.0, (expires - utcnow()).total_seconds()) + 0.5)
    other.reload()
    for _ in range(3):  # dan's own first lease comes first: approve until ann's item shows up
        if _current(other) == held:
            break
        _press_and_wait(other, "a")
    assert _current(other) == held
    other.context.close()
