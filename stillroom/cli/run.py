from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from stillroom.cli.app import EXIT_OK, EXIT_PARTIAL, JsonOpt, Output, app
from stillroom.errors import StillroomError


@app.command()
def run(
    paths: Annotated[list[str], typer.Argument(help="Documents, folders or globs to turn into a dataset.")],
    project: Annotated[Path, typer.Option("--project", "-p", file_okay=False,
                                          help="Project folder; created when it does not exist.")] = Path("."),
    provider: Annotated[Optional[str], typer.Option(metavar="NAME", help="Provider (default: [distill] provider; "
                                                    "the local model when no keys are set).")] = None,
    task: Annotated[Optional[list[str]], typer.Option("--task", "-t", metavar="NAME", help="Task (repeatable).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", metavar="FORMAT",
                                     help="Snapshot format: alpaca, sharegpt, openai, llamafactory, parquet.")] = "openai",
    limit: Annotated[Optional[int], typer.Option(min=1, metavar="N", help="Distill only the first N chunks.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Export although a quality gate fails (recorded).")] = False,
    json_: JsonOpt = False,
) -> None:
    """The whole job: init if needed → ingest → distill → curate → export a snapshot. Re-run to continue."""
    from stillroom.curate.export import export_snapshot
    from stillroom.curate.pipeline import curate
    from stillroom.distill.runner import DistillRun, Options
    from stillroom.ingest import ingest_paths
    from stillroom.project import init_project

    out = Output(json_)
    proj, _ = init_project(project)
    store, settings = proj.store(), proj.settings
    out.say(f"[bold]1/4 ingest[/bold] → {proj.root}")
    ingested = ingest_paths(store, settings, paths)
    for path, message in ingested.failed:
        out.problem(f"{path}: {message}")
    if not store.scalar("SELECT count(*) FROM chunks"):
        raise StillroomError("no chunks to distill: every input failed (see above) — fix the inputs and run again")
    out.say("[bold]2/4 distill[/bold]")
    distilled = DistillRun(proj, Options(tasks=task, provider=provider, limit=limit),
                           on_event=lambda msg: out.say(f"[yellow]{msg}[/yellow]")).execute()
    out.say("[bold]3/4 curate[/bold]")
    curated = curate(store, settings)
    out.say("[bold]4/4 export[/bold]")
    snapshot_dir = proj.root / "snapshots" / _next_name(proj.root / "snapshots")
    snapshot, export_error = None, None
    try:
        snapshot = export_snapshot(store, settings, fmt, snapshot_dir, split=_split_for(store, settings), force=force)
    except StillroomError as err:
        export_error = str(err)
    queued = store.scalar("SELECT count(*) FROM review_queue q WHERE NOT EXISTS "
                          "(SELECT 1 FROM reviews r WHERE r.item_id = q.item_id)")
    summary = _summary(proj.root, ingested, distilled, curated, snapshot, snapshot_dir, export_error, queued)
    _say_summary(out, summary)
    out.summary(summary)
    partial = ingested.failed or distilled["status"] != "done" or sum(distilled["failed"].values()) or export_error
    raise typer.Exit(EXIT_PARTIAL if partial else EXIT_OK)


def _next_name(folder: Path) -> str:
    n = 1
    while (folder / f"v{n}").exists():
        n += 1
    return f"v{n}"


def _split_for(store, settings) -> list[float]:
    """Splits go by source document; with fewer documents than non-empty splits, fold the rest into train."""
    shares = list(settings.export.split)
    docs = store.scalar("SELECT count(DISTINCT c.document_id) FROM items i JOIN chunks c ON c.id = i.chunk_id") or 0
    while sum(1 for s in shares if s > 0) > max(docs, 1):
        last = max(i for i, s in enumerate(shares) if s > 0)
        shares[0] += shares[last]
        shares[last] = 0.0
    return shares


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def _summary(root, ingested, distilled, curated, snapshot, snapshot_dir, export_error, queued) -> dict:
    return {
        "project": str(root),
        "documents": ingested.documents, "chunks_new": ingested.chunks, "ingest_failed": len(ingested.failed),
        "items_by_task": distilled.get("items", {}), "distill_status": distilled["status"],
        "distill_failed": distilled["failed"],
        "gates": curated["gates"], "gates_passed": curated["passed"],
        "review_queue": queued, "error_rate": curated["error_rate"]["text"],
        "snapshot": str(snapshot_dir) if snapshot else None,
        "snapshot_splits": {k: v["count"] for k, v in snapshot["splits"].items()} if snapshot else None,
        "export_error": export_error,
    }


def _say_summary(out: Output, s: dict) -> None:
    from rich.table import Table

    out.say(f"\n[bold]documents[/bold] {s['documents']} new · [bold]chunks[/bold] {s['chunks_new']} new · "
            f"[bold]items[/bold] " + (", ".join(f"{t} {n}" for t, n in s["items_by_task"].items()) or "none"))
    gates = Table(title="quality gates")
    for col in ("gate", "value", "threshold", "ok"):
        gates.add_column(col)
    for g in s["gates"]:
        gates.add_row(str(g["name"]), _fmt(g["value"]), _fmt(g["threshold"]), "yes" if g["passed"] else "NO")
    out.say(gates)
    out.say(f"waiting for review: {s['review_queue']} — `stillroom review -p {s['project']}` (create a reviewer with `stillroom users add`)")
    out.say(f"error rate: {s['error_rate']}")
    if s["snapshot"]:
        out.say(f"snapshot: {s['snapshot']} {s['snapshot_splits']}\n"
                f"train on it: stillroom train {s['snapshot']} -p {s['project']} --max-steps 50")
    else:
        out.problem(f"no snapshot: {s['export_error']}")
