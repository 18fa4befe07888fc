"""Admin Runs page: upload documents, start ingest → distill → curate, watch it, stop it."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import UploadFile

from stillroom.errors import StillroomError
from stillroom.review_ui import dashboard, jobs
from stillroom.review_ui.app import state
from stillroom.review_ui.views_admin import require_admin

router = APIRouter(dependencies=[Depends(require_admin)])


def _choices() -> dict:
    from stillroom.distill.provider import PROVIDERS
    from stillroom.distill.tasks import TASKS

    return {"providers": PROVIDERS.names(), "tasks": TASKS.names()}


def _page(request: Request, message: str = "", error: str = "") -> Response:
    st = state(request)
    with st.gate.use() as store:
        runs = dashboard.recent_runs(store, limit=15)
        problems = dashboard.run_problems(store)
    up = jobs.uploads_dir(st.project.root)
    files = sorted(p.name for p in up.iterdir()) if up.is_dir() else []
    cfg = st.project.settings.distill
    return st.templates.TemplateResponse(request, "runs.html", {
        "session": request.state.session, "runs": runs, "problems": problems, "jobs": jobs.recent(st.project.state_dir),
        "files": files, "message": message, "error": error, "default_tasks": cfg.tasks,
        "default_provider": cfg.provider, "max_mb": st.settings.upload_max_mb, "types": st.settings.upload_types,
        **_choices()})


@router.get("/runs", response_class=HTMLResponse)
def runs_page(request: Request) -> Response:
    return _page(request)


MAX_FILES = 20


@router.post("/runs/upload", response_class=HTMLResponse)
async def upload(request: Request) -> Response:
    """Files are checked one by one; the request as a whole is refused before it is read if it is too big."""
    st = state(request)
    limit = st.settings.upload_max_mb * 1024 * 1024
    if int(request.headers.get("content-length") or 0) > MAX_FILES * limit + 65536:
        return Response(f"too much at once — at most {MAX_FILES} files of {st.settings.upload_max_mb} MB",
                        status_code=413)
    form = await request.form(max_files=MAX_FILES)
    saved, errors = [], []
    for f in form.getlist("files"):
        if not isinstance(f, UploadFile):
            continue
        data = await f.read(limit + 1)  # one byte past the limit is enough to refuse it
        try:
            saved.append(jobs.save_upload(st.project.root, f.filename or "", data, st.settings.upload_types,
                                          st.settings.upload_max_mb).name)
        except StillroomError as e:
            errors.append(str(e))
    return _page(request, f"uploaded {', '.join(saved)}" if saved else "", "\n".join(errors))


@router.post("/runs/start", response_class=HTMLResponse)
def start(request: Request, provider: str = Form(""), tasks: list[str] = Form([])) -> Response:
    st = state(request)
    choices = _choices()
    if provider and provider not in choices["providers"] or any(t not in choices["tasks"] for t in tasks):
        return _page(request, error="unknown provider or task — pick from the lists")
    job = jobs.start(st.project.root, st.project.state_dir, request.state.session.user,
                     provider or st.project.settings.distill.provider, tasks or st.project.settings.distill.tasks)
    return _page(request, f"started run {job}: ingest → distill → curate")


@router.get("/runs/{job}", response_class=HTMLResponse)
def progress(request: Request, job: str) -> Response:
    """The live part of the page; the browser polls it every two seconds while the run is going."""
    st = state(request)
    try:
        info = jobs.load(st.project.state_dir, job)
    except StillroomError as e:
        return Response(str(e), status_code=404)
    return st.templates.TemplateResponse(request, "_job.html", {"job": info})


@router.post("/runs/{job}/stop", response_class=HTMLResponse)
def stop(request: Request, job: str) -> Response:
    st = state(request)
    try:
        stopped = jobs.stop(st.project.state_dir, job)
    except StillroomError as e:
        return Response(str(e), status_code=404)
    return _page(request, f"stopping run {job}: start it again to resume" if stopped else f"run {job} had finished")
