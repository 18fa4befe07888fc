"""Content-hash identifiers: the same content always gets the same id, so re-runs insert nothing new."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def content_id(kind: str, obj: Any, length: int = 32) -> str:
    """`kind` prefixes the hash so an item id never collides with a chunk id of equal content."""
    digest = hashlib.sha256(f"{kind}\x00{canonical_json(obj)}".encode()).hexdigest()
    return f"{kind}_{digest[:length]}"


def file_sha256(path: Path, block: int = 1 << 20) -> str:
    """Streams the file: a file of hundreds of MB never sits in memory whole."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()
