from __future__ import annotations

from typing import Annotated

import typer

from stillroom.cli.app import EXIT_OK, EXIT_PARTIAL, JsonOpt, Output, ProjectOpt, app
from stillroom.project import find_project


@app.command()
def curate(
    rescore: Annotated[bool, typer.Option("--rescore", help="Score every item again (after changing scorers or weights).")] = False,
    project: ProjectOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Score items, find duplicates, select the mix, check the quality gates and fill the review queue.

    Exits 1 when a gate fails (export then refuses unless --force).
    """
    from rich.table import Table

    from stillroom.curate.pipeline import curate as run_curate

    out = Output(json_)
    proj = find_project(project)
    s = run_curate(proj.store(), proj.settings, rescore=rescore)
    sc, d, sel, q = s["scored"], s["duplicates"], s["selection"], s["queue"]
    out.say(f"scored {sc['scored']} items ({sc['hard_fail']} hard fails); duplicates: {d['exact']['items']} exact, "
            f"{d['near']['items']} near; selected {sel['selected']} of {sel['pool']} approved items")
    table = Table(title="quality gates")
    for col in ("gate", "result", "value", "threshold", "detail"):
        table.add_column(col)
    for g in s["gates"]:
        value = "–" if g["value"] is None else f"{g['value']:.1%}"
        threshold = "–" if g["threshold"] is None else f"{g['op']} {g['threshold']:.0%}"
        table.add_row(g["name"], "[green]pass[/green]" if g["passed"] else "[red]FAIL[/red]", value, threshold,
                      g["detail"])
    out.say(table)
    out.say(f"review queue: waiting {q['waiting']['hard_fail']} hard fails, {q['waiting']['low_score']} low scores, "
            f"{q['waiting']['audit']} audit sample")
    out.say(f"error rate of approved-but-unreviewed items: {s['error_rate']['text']}")
    out.summary(s)
    if not s["passed"]:
        failing = ", ".join(g["name"] for g in s["gates"] if not g["passed"])
        out.problem(f"quality gate(s) failed: {failing} — review the queue (stillroom review), fix the thresholds "
                    "under curate.gates in stillroom.toml, or export with --force (recorded in the manifest)")
        raise typer.Exit(EXIT_PARTIAL)
    raise typer.Exit(EXIT_OK)
