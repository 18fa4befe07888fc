"""The typer app and the flag bundles every command shares (written once, used everywhere)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from typer.core import TyperGroup

from stillroom.errors import StillroomError


class _Group(TyperGroup):
    """Turns a StillroomError from any command into one clean line on stderr and its exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except StillroomError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(err.exit_code) from None


app = typer.Typer(
    cls=_Group,
    name="stillroom",
    help="Turn your documents into a curated fine-tuning dataset and a trained adapter.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

ProjectOpt = Annotated[
    Optional[Path],
    typer.Option("--project", "-p", help="Project folder (default: found from the working directory upward).",
                 file_okay=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable summary on stdout; humans' output is suppressed.")]

# Exit codes mean something: 0 all done, 1 some inputs failed (and were reported), 2 usage/config error.
EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2


class Output:
    """Human output goes to stderr (or nowhere with --json); the JSON summary alone goes to stdout."""

    def __init__(self, json_mode: bool) -> None:
        self.json_mode = json_mode
        self.console = Console(stderr=True, quiet=json_mode, highlight=False, soft_wrap=True)

    def say(self, *objects: Any, **kw: Any) -> None:
        self.console.print(*objects, **kw)

    def problem(self, message: str) -> None:
        """Reported even in --json mode: a failure must never be silent."""
        Console(stderr=True, highlight=False, soft_wrap=True).print(f"[red]error:[/red] {message}", markup=True)

    def summary(self, data: dict) -> None:
        if self.json_mode:
            sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")

