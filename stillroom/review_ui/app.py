"""The review web app: `create_app(project)` builds it; all state comes from the lifespan hook.

Default deny: the middleware refuses every request without a live session (a redirect to the
login page for a browser's page load, 401 otherwise) except the login page and static files, and
refuses every state-changing request whose X-CSRF-Token header does not match the session's.
"""

from __future__ import annotations

import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.datastructures import MutableHeaders

from stillroom.errors import StillroomError, StoreBusy
from stillroom.project import Project
from stillroom.review_ui import users
from stillroom.review_ui.auth import COOKIE, LOGIN_COOKIE, LoginLimiter, Sessions, tokens_match
from stillroom.review_ui.db import DbGate
from stillroom.review_ui.render import reasons
from stillroom.settings.review import ReviewSettings
from stillroom.store import Store

HERE = Path(__file__).parent
PUBLIC_PATHS = ("/login",)
PUBLIC_PREFIXES = ("/static/",)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
RECHECK_S = 30.0  # how often a live session's account is checked for `users disable`
SECURITY_HEADERS = {
    # No inline script anywhere: even if escaping failed, injected markup could not run.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass
class AppState:
    project: Project
    settings: ReviewSettings
    gate: DbGate
    sessions: Sessions
    by_name: LoginLimiter
    by_addr: LoginLimiter
    templates: Jinja2Templates
    secure_cookies: bool
    prefetching: threading.Lock = field(default_factory=threading.Lock)  # one background view prefetch at a time


def create_app(project: Project, *, secure_cookies: bool = False, settings: ReviewSettings | None = None) -> FastAPI:
    """`secure_cookies` marks cookies Secure even when a proxy terminates HTTPS (https requests always get it)."""
    cfg = settings or project.settings.review

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # A reviewer waits at most this long for a batch run's transaction, then sees why (not a hung page).
        gate = DbGate(Store(project.db_path, lock_timeout_s=cfg.db_wait_s), idle_close_s=cfg.idle_close_ms / 1000)
        templates = Jinja2Templates(directory=str(HERE / "templates"))
        templates.env.globals["reject_reasons"] = cfg.reject_reasons
        templates.env.filters["reasons"] = reasons
        app.state.review = AppState(
            project, cfg, gate, Sessions(cfg.session_idle_minutes * 60, cfg.session_max_hours * 3600),
            LoginLimiter(cfg.login_max_failures, cfg.login_window_s),
            # Several reviewers may share one address (an office NAT): a looser limit per address.
            LoginLimiter(cfg.login_max_failures * 4, cfg.login_window_s), templates, secure_cookies,
        )
        try:
            yield
        finally:
            gate.shutdown()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.add_middleware(_Guard)
    app.exception_handler(StillroomError)(_problem)
    _add_login_routes(app)
    from stillroom.review_ui import views_admin, views_review, views_runs

    app.include_router(views_review.router)
    app.include_router(views_admin.router)
    app.include_router(views_runs.router)
    return app


class _Guard:
    """The default-deny check and the security headers, as plain ASGI middleware.

    (Starlette's `@app.middleware("http")` wraps every response in a task and a stream: 1–2 ms a
    request on two busy cores, paid on every key press.)
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(SECURITY_HEADERS)
            await send(message)

        request = Request(scope)
        response = None
        if not (request.url.path in PUBLIC_PATHS or request.url.path.startswith(PUBLIC_PREFIXES)):
            response = _refusal(request)
            if response is None and not await _still_enabled(request):
                response = PlainTextResponse("this account was disabled", status_code=401,
                                             headers={"HX-Redirect": "/login"})
        await (response or self.app)(scope, receive, send_with_headers)


async def _problem(request: Request, err: StillroomError) -> Response:
    """An error the user can act on, as one line (htmx shows it in the status line: nothing was recorded)."""
    return PlainTextResponse(str(err), status_code=503 if isinstance(err, StoreBusy) else 400)


def _refusal(request: Request) -> Response | None:
    """None when the request may go on; sets request.state.session for the views."""
    st: AppState = request.app.state.review
    session = st.sessions.get(request.cookies.get(COOKIE))
    if session is None:
        if request.method == "GET" and "text/html" in request.headers.get("accept", "") \
                and "hx-request" not in request.headers:
            return RedirectResponse("/login", status_code=303)
        return PlainTextResponse("log in first", status_code=401, headers={"HX-Redirect": "/login"})
    if request.method not in SAFE_METHODS and not tokens_match(session.csrf, request.headers.get("x-csrf-token")):
        return PlainTextResponse("missing or wrong CSRF token — reload the page", status_code=403)
    request.state.session = session
    return None


async def _still_enabled(request: Request) -> bool:
    """`stillroom users disable` takes effect on a live session within RECHECK_S, not only at its next login."""
    from starlette.concurrency import run_in_threadpool

    st: AppState = request.app.state.review
    session = request.state.session
    if time.monotonic() - session.checked < RECHECK_S:
        return True

    def check() -> bool:
        with st.gate.use() as store:
            user = users.get_user(store, session.user)
        return user is not None and not user.disabled

    if await run_in_threadpool(check):
        session.checked = time.monotonic()
        return True
    st.sessions.end_user(session.user)
    return False


def state(request: Request) -> AppState:
    return request.app.state.review


def _set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    secure = state(request).secure_cookies or request.url.scheme == "https"
    response.set_cookie(name, value, httponly=True, samesite="lax", secure=secure, path="/")


def _add_login_routes(app: FastAPI) -> None:
    import secrets

    def login_form(request: Request, error: str = "", status: int = 200) -> Response:
        st = state(request)
        token = secrets.token_urlsafe(32)
        response = st.templates.TemplateResponse(request, "login.html", {"csrf": token, "error": error},
                                                 status_code=status)
        _set_cookie(request, response, LOGIN_COOKIE, token)
        return response

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request) -> Response:
        return login_form(request)

    @app.post("/login")
    def login(request: Request, name: str = Form(...), password: str = Form(...), csrf: str = Form("")) -> Response:
        st = state(request)
        if not tokens_match(request.cookies.get(LOGIN_COOKIE), csrf):
            return PlainTextResponse("login form expired — reload the login page", status_code=403)
        addr = request.client.host if request.client else "?"
        wait = max(st.by_name.retry_after(name), st.by_addr.retry_after(addr))
        if wait:
            return PlainTextResponse(f"too many wrong passwords — try again in {wait} s", status_code=429,
                                     headers={"Retry-After": str(wait)})
        with st.gate.use() as store:
            row = users.lookup(store, name)
        user = users.check_password(row, password)
        if user is None:
            st.by_name.failed(name)
            st.by_addr.failed(addr)
            return login_form(request, "wrong name or password", status=401)
        st.by_name.succeeded(name)
        response = RedirectResponse("/review", status_code=303)
        _set_cookie(request, response, COOKIE, st.sessions.create(user.name, user.is_admin))
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    @app.post("/logout")
    def logout(request: Request) -> Response:
        state(request).sessions.end(request.cookies.get(COOKIE))
        response = Response(status_code=204, headers={"HX-Redirect": "/login"})
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.get("/")
    def home(request: Request) -> Response:
        return RedirectResponse("/dashboard" if request.state.session.is_admin else "/review", status_code=303)
