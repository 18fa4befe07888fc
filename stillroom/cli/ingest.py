from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from stillroom.cli.app import EXIT_PARTIAL, JsonOpt, Output, ProjectOpt, app
from stillroom.project import find_project


@app.command()
def ingest(
    paths: Annotated[list[str], typer.Argument(help="Files, folders (recursive) and globs: PDF, TXT, Markdown, HTML, DOCX.")],
    password: Annotated[list[str], typer.Option("--password", help="Password for encrypted PDFs (repeatable).")] = [],
    project: ProjectOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Documents → clean text with provenance → chunks, one transaction per document."""
    from stillroom.ingest import ingest_paths

    out = Output(json_)
    proj = find_project(project)
    with Progress(TextColumn("[bold]ingest"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[pages]} pages"),
                  TextColumn("{task.description}"), TimeElapsedColumn(), console=out.console,
                  disable=json_) as bar:
        task = bar.add_task("", total=None, pages=0)

        def advance(name: str, pages: int) -> None:
            bar.update(task, advance=1, description=name[:40], pages=bar.tasks[task].fields["pages"] + pages)

        report = ingest_paths(proj.store(), proj.settings, paths, passwords=tuple(password), progress=advance,
                              on_total=lambda n: bar.update(task, total=n))
    for path, message in report.failed:
        out.problem(f"{path}: {message}")
    table = Table(title="ingest summary")
    for col in ("documents", "pages", "chunks", "unchanged", "skipped", "failed", "seconds"):
        table.add_column(col, justify="right")
    table.add_row(str(report.documents), str(report.pages), str(report.chunks),
                  str(report.unchanged + report.known_content), str(len(report.skipped)), str(len(report.failed)),
                  f"{report.seconds:.1f}")
    out.say(table)
    if report.unchanged or report.known_content:
        out.say(f"{report.unchanged + report.known_content} file(s) already ingested with the same content: nothing added")
    out.summary(report.as_dict())
    if report.failed:
        raise typer.Exit(EXIT_PARTIAL)
