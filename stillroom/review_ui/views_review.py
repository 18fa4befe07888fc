"""The review queue: one page, and fragments that each record a decision and bring the next item.

Every decision goes through `stillroom.curate.reviews` (the same API the CLI uses); this module
only chooses which call a key press means and renders the result.
"""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.background import BackgroundTask

from stillroom.curate import reviews
from stillroom.curate.review_order import VIEW_BATCH
from stillroom.errors import StillroomError, StoreBusy
from stillroom.review_ui.app import AppState, state
from stillroom.review_ui.render import marked

router = APIRouter()


def _next(store, user: str, st) -> dict | None:
    """The reviewer's leased item (or a newly leased one), with its view."""
    item = reviews.next_item(store, user, lease_s=st.settings.lease_s,
                             double_share=st.settings.double_review_share, with_view=True)
    return item["view"] if item else None


def _next_shown(store, user: str, st) -> dict | None:
    """`_next`, or None where its view cannot be built (shown after an error that already says what to do)."""
    try:
        return _next(store, user, st)
    except StoreBusy:
        raise
    except StillroomError:
        return None


def view_model(view: dict | None) -> dict | None:
    """What the item template needs: the API's view plus the source and answer cut into marked pieces.

    In the source, the sentences that support the answer are marked, and within them (or anywhere)
    the figures the answer quotes; in the answer, each figure is marked found or not found.
    """
    if view is None:
        return None
    figures = view.get("figures") or []
    source, answer = view.get("chunk_text") or "", view.get("answer") or ""
    src_spans = [(s, e, "support", "supports the answer") for s, e in view.get("support") or []]
    src_spans += [(*f["source_span"], "found", f["text"]) for f in figures if f.get("source_span")]
    answer_spans = [(f["start"], f["end"], "fig-found" if f.get("source_span") else "fig-missing",
                     "found in the source" if f.get("source_span") else "not found in the source")
                    for f in figures]
    return {**view, "source_pieces": marked(source, src_spans), "answer_pieces": marked(answer, answer_spans),
            "missing": [f["text"] for f in figures if not f.get("source_span")]}


def _item_fragment(request: Request, view: dict | None, flash: str = "", error: str = "") -> Response:
    st = state(request)
    response = st.templates.TemplateResponse(
        request, "_item.html", {"item": view_model(view), "flash": flash, "error": error},
    )
    response.background = BackgroundTask(_prefetch, st)
    return response


def _prefetch(st: AppState) -> None:
    """After the response is sent: fetch the next round of views while the reviewer reads this one.

    One call per response, never a loop: a background task keeps its keep-alive connection busy until
    it returns. Most calls fetch nothing (enough views are ready); about once per 450 decisions one
    fetches a whole round (VIEW_BATCH views, ~90 ms at 200k items: one scan per table, where 64 views
    cost ~50 ms). Skipped when a request or a batch run (another process) waits for the database.
    """
    if st.gate.waiting or not st.prefetching.acquire(blocking=False):
        return  # someone waits, or another request's prefetch is on it
    try:
        with st.gate.use() as store:
            if not store.others_waiting():
                reviews.prefetch(store, VIEW_BATCH)
    except StillroomError:
        pass  # the database was busy: the next key press fetches what it needs itself
    finally:
        st.prefetching.release()


@router.get("/review", response_class=HTMLResponse)
def review_page(request: Request) -> Response:
    st = state(request)
    s = request.state.session
    with st.gate.use() as store:
        view = _next(store, s.user, st)
    return st.templates.TemplateResponse(
        request, "review.html", {"item": view_model(view), "session": s, "flash": "", "error": ""},
    )


@router.get("/review/item", response_class=HTMLResponse)
def current_item(request: Request) -> Response:
    """The reviewer's leased item (or the next one); the empty-queue page polls this."""
    st = state(request)
    with st.gate.use() as store:
        view = _next(store, request.state.session.user, st)
    return _item_fragment(request, view)


@router.post("/review/decide", response_class=HTMLResponse)
def decide(request: Request, item_id: str = Form(...), decision: str = Form(...),
           reason_code: str | None = Form(None)) -> Response:
    st = state(request)
    user = request.state.session.user
    if decision not in ("approve", "reject"):
        return Response(f"unknown decision {decision!r} — use approve or reject", status_code=400)
    error = ""
    with st.gate.use() as store:
        try:  # one transaction: the decision and the next item's lease; then the next item's view
            item = reviews.decide_and_next(store, item_id, user, decision, reason_code=reason_code or None,
                                           lease_s=st.settings.lease_s,
                                           double_share=st.settings.double_review_share, with_view=True)
            view = item["view"] if item else None
        except StoreBusy:
            raise  # nothing recorded: 503, the reviewer presses again
        except StillroomError as e:  # refused (nothing recorded), or the next view failed: say why, show what is next
            error = str(e)
            view = _next_shown(store, user, st)
    flash = "" if error else f"{decision}d {item_id[:12]}" + (f" ({reason_code})" if reason_code else "") + " — u undoes"
    return _item_fragment(request, view, flash, error)


@router.post("/review/skip", response_class=HTMLResponse)
def skip(request: Request, item_id: str = Form(...)) -> Response:
    st = state(request)
    user = request.state.session.user
    with st.gate.use() as store:
        reviews.release(store, item_id, user)
        view = _next(store, user, st)
    return _item_fragment(request, view, f"skipped {item_id[:12]}")


@router.post("/review/undo", response_class=HTMLResponse)
def undo(request: Request) -> Response:
    st = state(request)
    user = request.state.session.user
    with st.gate.use() as store:
        undone = reviews.undo(store, user, lease_s=st.settings.lease_s)
        view = _next(store, user, st)
    return _item_fragment(request, view, f"undid {undone[:12]}" if undone else "nothing to undo")


@router.post("/review/edit", response_class=HTMLResponse)
def edit(request: Request, item_id: str = Form(...), question: str = Form(...), answer: str = Form(...)) -> Response:
    st = state(request)
    user = request.state.session.user
    error = ""
    with st.gate.use() as store:
        try:
            revision = reviews.edit(store, item_id, user, question=question, answer=answer)
        except StillroomError as e:
            error, revision = str(e), None
        view = reviews.item_view(store, item_id)
    return _item_fragment(request, view, f"saved revision {revision}" if revision is not None else "", error)


@router.post("/review/check")
def check_figures(request: Request, item_id: str = Form(...), answer: str = Form(...)) -> Response:
    """Figures in an edited answer that the source chunk does not contain, shown before saving."""
    from stillroom.curate.numbers import match_figures

    st = state(request)
    with st.gate.use() as store:
        view = reviews.item_view(store, item_id)
    missing = [m.figure.text for m in match_figures(answer, view.get("chunk_text") or "") if m.source_span is None]
    return JSONResponse({"missing": missing})

