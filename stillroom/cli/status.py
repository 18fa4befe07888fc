from __future__ import annotations

from rich.table import Table

from stillroom.cli.app import JsonOpt, Output, ProjectOpt, app
from stillroom.project import find_project


@app.command()
def status(project: ProjectOpt = None, json_: JsonOpt = False) -> None:
    """What the project holds, stage by stage, and its recent runs."""
    out = Output(json_)
    proj = find_project(project)
    store = proj.store()
    with store.connect() as con:
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("documents", "document_versions", "pages", "chunks", "items", "reviews", "snapshots")}
        runs = con.execute(
            "SELECT id, stage, status, started_at, finished_at, summary FROM runs ORDER BY started_at DESC LIMIT 5"
        ).fetchall()
    table = Table(title=f"stillroom project {proj.root}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, n in counts.items():
        table.add_row(name, str(n))
    out.say(table)
    for r in runs:
        out.say(f"run {r[0]} {r[1]} {r[2]} started {r[3]:%Y-%m-%d %H:%M:%S}")
    out.summary({"project": str(proj.root), "counts": counts,
                 "runs": [{"id": r[0], "stage": r[1], "status": r[2], "started_at": r[3], "finished_at": r[4]}
                          for r in runs]})
