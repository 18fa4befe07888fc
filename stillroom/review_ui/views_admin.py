"""Admin pages: the dashboard and snapshot export. Reviewers get 403 here."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from stillroom.curate import reviews
from stillroom.curate.export import export_snapshot
from stillroom.curate.exporters import EXPORTERS
from stillroom.errors import StillroomError
from stillroom.review_ui import dashboard
from stillroom.review_ui.app import state


def require_admin(request: Request) -> None:
    if not request.state.session.is_admin:
        raise HTTPException(403, "admins only — ask an admin to run `stillroom users add NAME --admin`")


router = APIRouter(dependencies=[Depends(require_admin)])


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard_page(request: Request) -> Response:
    st = state(request)
    with st.gate.use() as store:
        data = {
            "progress": dashboard.progress(store, st.settings.double_review_share), "reviewers": dashboard.per_reviewer(store),
            "agreement": dashboard.agreement(store), "charts": dashboard.charts(store),
            "runs": dashboard.recent_runs(store), "keys": dashboard.key_health(store),
            # the gates and the audit's error-rate estimate exactly as curate computes them
            "gates": reviews.gates(store), "error_rate": reviews.error_rate(store),
        }
    data["formats"] = EXPORTERS.names()
    return st.templates.TemplateResponse(request, "dashboard.html", {"session": request.state.session, **data})


@router.post("/export", response_class=HTMLResponse)
def export(request: Request, fmt: str = Form(...), force: bool = Form(False)) -> Response:
    """A snapshot into <project>/snapshots/, through the same function as `stillroom export`."""
    st = state(request)
    out = st.project.root / "snapshots" / f"{time.strftime('%Y%m%d-%H%M%S')}-{fmt}"
    try:
        with st.gate.use() as store:
            m = export_snapshot(store, st.project.settings, fmt, out, force=force)
    except StillroomError as e:
        return st.templates.TemplateResponse(request, "_export.html", {"error": str(e)}, status_code=400)
    return st.templates.TemplateResponse(request, "_export.html", {"manifest": m, "path": out})
