from __future__ import annotations

from rich.table import Table

from stillroom.cli.app import JsonOpt, Output, ProjectOpt, app
from stillroom.project import find_project


@app.command()
def status(project: ProjectOpt = None, json_: JsonOpt = False) -> None:
    """What the project holds, stage by stage: counts, the distill ledger, gates, the error-rate estimate, runs."""
    from stillroom.curate.gates import latest_gates
    from stillroom.curate.sampling import error_rate_estimate
    from stillroom.distill.records import last_run

    out = Output(json_)
    proj = find_project(project)
    store = proj.store()
    with store.session():
        with store.connect() as con:
            counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                      for t in ("documents", "document_versions", "pages", "chunks", "items", "reviews", "snapshots")}
            runs = con.execute("SELECT id, stage, status, started_at, finished_at FROM runs "
                               "ORDER BY started_at DESC LIMIT 5").fetchall()
        distill = last_run(store)
        gates = latest_gates(store)
        error_rate = error_rate_estimate(store, proj.settings)
    table = Table(title=f"stillroom project {proj.root}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, n in counts.items():
        table.add_row(name, str(n))
    out.say(table)
    if distill:
        failed = distill.get("failed") or {}
        out.say(f"distill {distill['run_id']} ({distill['status']}): {distill.get('planned')} units planned = "
                f"{distill.get('done')} done + {sum(failed.values())} failed "
                + (f"({', '.join(f'{k} {v}' for k, v in sorted(failed.items()))}) " if failed else "")
                + f"+ {distill.get('pending')} not yet run")
    if gates:
        out.say("gates: " + ", ".join(f"{g['name']} {'ok' if g['passed'] else 'FAIL'}" for g in gates))
    out.say(f"error rate: {error_rate['text']}")
    for r in runs:
        out.say(f"run {r[0]} {r[1]} {r[2]} started {r[3]:%Y-%m-%d %H:%M:%S}")
    out.summary({"project": str(proj.root), "counts": counts, "distill": distill, "gates": gates,
                 "error_rate": error_rate,
                 "runs": [{"id": r[0], "stage": r[1], "status": r[2], "started_at": r[3], "finished_at": r[4]}
                          for r in runs]})
