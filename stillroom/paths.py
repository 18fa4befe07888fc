"""Where stillroom keeps files that belong to the user rather than to one project."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Derived data that can be rebuilt (e.g. a tokenizer converted from a GGUF file)."""
    base = os.environ.get("STILLROOM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "stillroom")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path
