"""The adapter folder's manifest.json: where the adapter came from and the sha256 of every file in it."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from stillroom import __version__
from stillroom.errors import StillroomError
from stillroom.ids import file_sha256

MANIFEST = "manifest.json"
_SKIP_DIRS = {"checkpoints"}  # resume state, not part of the published adapter


def adapter_files(folder: Path) -> dict[str, str]:
    out = {}
    for f in sorted(Path(folder).rglob("*")):
        rel = f.relative_to(folder)
        if f.is_file() and rel.as_posix() != MANIFEST and rel.parts[0] not in _SKIP_DIRS:
            out[rel.as_posix()] = file_sha256(f)
    return out


def write_manifest(folder: Path, *, snapshot_id: str, snapshot_hash: str, base_model: str, base_hash: str,
                   config: dict, metrics: dict, extra: dict | None = None) -> dict:
    """Written last, after every other file, so its hashes cover the finished adapter."""
    manifest = {
        "kind": "adapter",
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "stillroom_version": __version__,
        "snapshot_id": snapshot_id,
        "snapshot_hash": snapshot_hash,
        "base_model": base_model,
        "base_model_hash": base_hash,
        "config": config,
        "metrics": metrics,
        **(extra or {}),
        "files": adapter_files(folder),
    }
    (Path(folder) / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise StillroomError(f"{folder}: no {MANIFEST} — not an adapter written by `stillroom train`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise StillroomError(f"{path}: not valid JSON ({e}) — the manifest itself was changed") from None
    if manifest.get("kind") != "adapter":
        raise StillroomError(f"{folder}: manifest kind is {manifest.get('kind')!r}, not 'adapter'")
    return manifest


def verify_adapter(folder: Path) -> list[str]:
    """Problems found, one line each naming the file; an empty list means the adapter is intact."""
    folder = Path(folder)
    try:
        manifest = read_manifest(folder)
    except StillroomError as e:  # a missing or unreadable manifest is itself the problem to report
        return [str(e)]
    recorded = manifest.get("files", {})
    present = adapter_files(folder)
    problems = [f"{rel}: missing" for rel in recorded if rel not in present]
    problems += [f"{rel}: changed (sha256 {present[rel][:12]}… ≠ recorded {sha[:12]}…)"
                 for rel, sha in recorded.items() if rel in present and present[rel] != sha]
    problems += [f"{rel}: not in the manifest (added after training)" for rel in present if rel not in recorded]
    return problems


def adapter_hash(folder: Path) -> str:
    return file_sha256(Path(folder) / MANIFEST)
