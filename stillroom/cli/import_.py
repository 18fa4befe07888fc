from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stillroom.cli.app import EXIT_OK, EXIT_PARTIAL, JsonOpt, Output, ProjectOpt, app


@app.command("import")
def import_(
    files: Annotated[list[Path], typer.Argument(help="JSON or JSONL files: Alpaca, ShareGPT, OpenAI chat or question/answer records.")],
    project: ProjectOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Bring in existing datasets; they are scored, deduplicated, reviewed and exported like distilled items.

    A record's `source` or `context` becomes its chunk, `id` its external_id, other fields its meta.
    Records that cannot be read are reported by line and skipped (exit 1).
    """
    from stillroom.curate.importer import import_files
    from stillroom.project import find_project

    out = Output(json_)
    s = import_files(find_project(project).store(), files)
    out.say(f"imported {s['imported']} items from {len(files)} file(s) ({s['already_present']} already present, "
            f"{len(s['bad'])} unreadable) — run `stillroom curate` to score them")
    for b in s["bad"]:
        out.problem(f"{b['file']}:{b['line']}: {b['error']} (skipped)")
    out.summary(s)
    raise typer.Exit(EXIT_PARTIAL if s["bad"] else EXIT_OK)
