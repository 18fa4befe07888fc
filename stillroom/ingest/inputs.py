"""Command-line paths (files, folders, globs) → the files to ingest, with a reason for each path that gives none."""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path

from stillroom.ingest.extractors import supported_suffixes


@dataclass
class Inputs:
    files: list[Path] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, message)
    skipped: list[str] = field(default_factory=list)  # unsupported files found inside folders


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def expand(paths: list[str]) -> Inputs:
    out = Inputs()
    suffixes = set(supported_suffixes())
    seen: set[Path] = set()

    def add(p: Path) -> None:
        rp = p.resolve()
        if rp not in seen:
            seen.add(rp)
            out.files.append(rp)

    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _visible(p, path))
            usable = [p for p in found if p.suffix.lower() in suffixes]
            out.skipped += [str(p) for p in found if p.suffix.lower() not in suffixes]
            if not usable:
                out.failures.append((raw, "folder has no supported files (supported: " + " ".join(sorted(suffixes)) + ")"))
            for p in usable:
                add(p)
        elif path.is_file():
            add(path)  # an unsupported extension named explicitly is reported when it is processed
        elif glob.has_magic(raw):
            matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True) if Path(m).is_file())
            if not matches:
                out.failures.append((raw, "no file matches this pattern"))
            for p in matches:
                add(p)
        else:
            out.failures.append((raw, "does not exist — check the path"))
    return out
