"""Check a folder against its manifest.json: every file's sha256, and nothing missing or added.

What is checked depends on the manifest's `kind` ("snapshot" here; the train stage registers
"adapter"), so `stillroom verify` stays one command for every artefact stillroom writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from stillroom.errors import UsageError
from stillroom.ids import content_id, file_sha256
from stillroom.registry import Registry

VERIFIERS: Registry[Callable[[Path, dict], dict]] = Registry("manifest kind", modules=("stillroom.curate.verify",))


def verify_path(path: Path) -> dict:
    """Returns {ok, kind, checked, changed, missing, extra, problems}; raises only when there is no manifest."""
    path = Path(path)
    manifest_path = path / "manifest.json" if path.is_dir() else path
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{manifest_path} not found — pass a snapshot folder written by `stillroom export`") from None
    except json.JSONDecodeError as e:
        raise UsageError(f"{manifest_path} is not valid JSON ({e}) — the manifest itself was changed") from None
    kind = manifest.get("kind", "snapshot")
    return {"kind": kind, "path": str(manifest_path.parent), **VERIFIERS.get(kind)(manifest_path.parent, manifest)}


def check_files(folder: Path, files: dict[str, str]) -> dict:
    """Hash every listed file; list the ones changed, missing, or present but not in the manifest."""
    changed, missing = [], []
    for rel, digest in sorted(files.items()):
        p = folder / rel
        if not p.is_file():
            missing.append(rel)
        elif file_sha256(p) != digest:
            changed.append(rel)
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    extra = sorted(present - set(files) - {"manifest.json"})
    return {"checked": len(files), "changed": changed, "missing": missing, "extra": extra,
            "ok": not (changed or missing or extra)}


@VERIFIERS.register("snapshot")
def verify_snapshot(folder: Path, manifest: dict) -> dict:
    files = manifest.get("files") or {}
    report = check_files(folder, files)
    problems = []
    if manifest.get("snapshot_id") != content_id("snap", files, 24):
        problems.append("the manifest's file list does not match its snapshot_id — manifest.json was edited")
    report["problems"] = problems
    report["ok"] = report["ok"] and not problems
    report["snapshot_id"] = manifest.get("snapshot_id")
    return report
