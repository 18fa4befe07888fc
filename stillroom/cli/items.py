from __future__ import annotations

from typing import Annotated, Optional

import typer

from stillroom.cli.app import JsonOpt, Output, ProjectOpt, app

WhereOpt = Annotated[Optional[str], typer.Option(
    "--where", metavar="EXPR", help="SQL condition, e.g. \"not hard_fail and overall > 0.8\" or \"numeric_fidelity < 1\".")]
StatusOpt = Annotated[Optional[list[str]], typer.Option(
    "--status", metavar="STATUS", help="approved, auto_approved, needs_review, rejected, duplicate, unscored (repeatable).")]


@app.command()
def items(
    where: WhereOpt = None,
    status: StatusOpt = None,
    limit: Annotated[int, typer.Option(min=0, metavar="N", help="At most N items (0: all).")] = 20,
    project: ProjectOpt = None,
    json_: JsonOpt = False,
) -> None:
    """List items with what curation decided: status, scores and their evidence (e.g. figures not in the source)."""
    from stillroom.curate.state import list_items
    from stillroom.project import find_project

    out = Output(json_)
    proj = find_project(project)
    rows = list_items(proj.store(), proj.settings, where, status, limit or None)
    for r in rows:
        missing = ((r["scores"].get("numeric_fidelity") or {}).get("evidence") or {}).get("not_in_source") or []
        overall = "–" if r["overall"] is None else f"{r['overall']:.2f}"
        out.say(f"{r['id']}  {r['status']:<13} {r['task']:<10} {overall}  {(r['question'] or '')[:60]!r}"
                + (f"  not in source: {', '.join(missing)}" if missing else ""))
    out.say(f"{len(rows)} item(s)")
    if json_:
        out.summary({"items": rows})


@app.command()
def decide(
    approve: Annotated[bool, typer.Option("--approve", help="Approve the matching items.")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="Reject the matching items (needs --reason).")] = False,
    reason: Annotated[Optional[str], typer.Option(metavar="CODE", help="Reason code of a rejection, e.g. unsupported.")] = None,
    where: WhereOpt = None,
    status: StatusOpt = None,
    reviewer: Annotated[str, typer.Option(metavar="NAME", help="Recorded as the decision's reviewer.")] = "admin-cli",
    project: ProjectOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Record one decision for every matching item (audited), e.g. --approve --where "not hard_fail and overall > 0.8"."""
    from stillroom.curate.reviews import decide_many
    from stillroom.curate.state import matching_ids
    from stillroom.errors import UsageError
    from stillroom.project import find_project

    if approve == reject:
        raise UsageError("pass exactly one of --approve or --reject")
    if not where and not status:
        raise UsageError("pass --where EXPR or --status (use --where true to mean every item)")
    out = Output(json_)
    proj = find_project(project)
    ids = matching_ids(proj.store(), proj.settings, where, status)
    decision = "approve" if approve else "reject"
    n = decide_many(proj.store(), ids, reviewer, decision, reason_code=reason, note=f"--where {where}" if where else None)
    out.say(f"{'approved' if approve else 'rejected'} {n} item(s) as {reviewer}")
    out.summary({"decision": decision, "items": n, "reviewer": reviewer})
