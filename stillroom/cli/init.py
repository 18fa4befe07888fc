from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stillroom.cli.app import JsonOpt, Output, app
from stillroom.project import init_project


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Project folder to create (default: here).")] = Path("."),
    json_: JsonOpt = False,
) -> None:
    """Create a project: stillroom.toml with commented defaults, and the DuckDB store."""
    out = Output(json_)
    project, created = init_project(directory)
    verb = "created" if created else "already a project, left as is:"
    out.say(f"{verb} {project.root}\n  settings: {project.config_path}\n  database: {project.db_path}")
    out.summary({"project": str(project.root), "created": created, "config": str(project.config_path),
                 "database": str(project.db_path)})
