from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from stillroom.cli.app import JsonOpt, Output, ProjectOpt, app
from stillroom.errors import UsageError


def _shares(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise UsageError(f"--split {text!r}: give three shares like 0.8,0.1,0.1") from None


@app.command()
def export(
    fmt: Annotated[str, typer.Option("--format", "-f", metavar="FORMAT", help="alpaca, sharegpt, openai, llamafactory or parquet.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Folder to create for the snapshot.")],
    split: Annotated[Optional[str], typer.Option(metavar="T,V,T", help="train,val,test shares by source document (default from [export] split).")] = None,
    seed: Annotated[Optional[int], typer.Option(metavar="N", help="Seed of the document split (default from [export] seed).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing snapshot folder.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Export although a quality gate fails (recorded in the manifest).")] = False,
    project: ProjectOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Write an immutable snapshot of the approved items with a manifest of hashes, gates and the error-rate estimate."""
    from stillroom.curate.export import export_snapshot
    from stillroom.project import find_project

    out = Output(json_)
    proj = find_project(project)
    m = export_snapshot(proj.store(), proj.settings, fmt, out_dir, split=_shares(split), seed=seed,
                        overwrite=overwrite, force=force)
    out.say(f"snapshot {m['snapshot_id']} → {out_dir}: " + ", ".join(
        f"{name} {s['count']}" for name, s in m["splits"].items()) + f" ({m['format']})")
    out.say(f"error rate: {m['error_rate']['text']}")
    if m["forced"]:
        out.problem(f"exported with --force although gate(s) failed: {', '.join(m['failing_gates'])} "
                    "(recorded in manifest.json)")
    out.summary(m)
