"""`stillroom` command line. Each command lives in its own module; heavy imports happen inside commands."""

from __future__ import annotations

import importlib
import pkgutil

from stillroom.cli.app import app

# Every module in this folder registers its commands on `app` when imported: a new command is one new file.
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name != "app":
        importlib.import_module(f"{__name__}.{_info.name}")


def main() -> None:
    app()
