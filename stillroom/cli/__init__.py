"""`stillroom` command line. Each command lives in its own module; heavy imports happen inside commands."""

from __future__ import annotations

import importlib
import sys

from stillroom.cli.app import app
from stillroom.errors import StillroomError

# One line per command module; each registers its commands on `app` when imported.
COMMAND_MODULES = (
    "stillroom.cli.init",
    "stillroom.cli.ingest",
    "stillroom.cli.status",
)

for _mod in COMMAND_MODULES:
    importlib.import_module(_mod)


def main() -> None:
    """Usage errors exit 2 (typer's own handling); a StillroomError is one clean message, no traceback."""
    try:
        app()
    except StillroomError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(err.exit_code) from None
