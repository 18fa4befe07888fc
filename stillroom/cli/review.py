"""`stillroom review`: serve the review web app."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from stillroom.cli.app import Output, ProjectOpt, app
from stillroom.errors import UsageError
from stillroom.project import find_project


@app.command()
def review(
    host: Annotated[Optional[str], typer.Option(help="Address to bind (default from [review] host: 127.0.0.1).")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port (default from [review] port: 8765).")] = None,
    https_cookies: Annotated[bool, typer.Option("--secure-cookies", help="Mark cookies Secure (serve behind HTTPS).")] = False,
    project: ProjectOpt = None,
) -> None:
    """Serve the keyboard-first review app; batch runs may go on beside it."""
    import uvicorn

    from stillroom.review_ui.app import create_app
    from stillroom.review_ui.users import list_users

    out = Output(False)
    proj = find_project(project)
    cfg = proj.settings.review
    host, port = host or cfg.host, port or cfg.port
    if not list_users(proj.store()):
        raise UsageError("nobody can log in yet — run `stillroom users add NAME --admin` first")
    if host in ("127.0.0.1", "localhost", "::1"):
        out.say(f"serving {proj.root} on http://{host}:{port} — loopback only; pass --host 0.0.0.0 to let others in")
    else:
        out.say(f"serving {proj.root} on http://{host}:{port} — reachable from other machines; "
                "put it behind HTTPS and pass --secure-cookies")
    uvicorn.run(create_app(proj, secure_cookies=https_cookies), host=host, port=port, log_level="warning")
