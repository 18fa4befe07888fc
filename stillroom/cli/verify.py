from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stillroom.cli.app import EXIT_OK, EXIT_PARTIAL, JsonOpt, Output, app


def _register_adapter_check() -> None:
    """The train stage's adapter check joins the curate stage's registry here: the CLI sits above both,
    and curate must not import train (imports follow the data)."""
    from stillroom.curate.verify import VERIFIERS
    from stillroom.train.manifest import read_manifest, verify_adapter

    if "adapter" in VERIFIERS.names():
        return

    @VERIFIERS.register("adapter")
    def _adapter(folder: Path, manifest: dict) -> dict:
        problems = verify_adapter(folder)
        return {"ok": not problems, "checked": len(read_manifest(folder).get("files", {})), "changed": [],
                "missing": [], "extra": [], "problems": problems}


@app.command()
def verify(
    path: Annotated[Path, typer.Argument(help="A snapshot folder (or its manifest.json) written by `stillroom export`.")],
    json_: JsonOpt = False,
) -> None:
    """Check every file of a snapshot against the sha256 in its manifest; names each changed file. Exits 1 on a mismatch."""
    from stillroom.curate.verify import verify_path

    _register_adapter_check()
    out = Output(json_)
    r = verify_path(path)
    out.summary(r)
    if r["ok"]:
        out.say(f"{r['kind']} {r['path']}: ok, {r['checked']} files match the manifest")
        raise typer.Exit(EXIT_OK)
    for label, key in (("changed", "changed"), ("missing", "missing"), ("not in the manifest", "extra")):
        for name in r[key]:
            out.problem(f"{name}: {label}")
    for p in r.get("problems", []):
        out.problem(p)
    raise typer.Exit(EXIT_PARTIAL)
