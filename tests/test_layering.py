"""Imports follow the data: documents → chunks → items → scores/reviews → snapshots → adapters."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "stillroom"
SHARED = {"errors", "ids", "registry", "settings", "store", "project", "paths", "__init__", "__main__"}
STAGES = ["ingest", "distill", "curate", "review_ui"]
# What each part of the package may import from stillroom (besides itself).
ALLOWED = {
    "shared": {"errors", "ids", "registry", "settings", "store", "project", "paths"},
    "ingest": SHARED,
    "distill": SHARED | {"ingest"},
    "curate": SHARED | {"ingest", "distill"},
    "review_ui": SHARED | {"ingest", "distill", "curate"},
    # train reads a snapshot folder and its manifest, never the database (it may reuse curate's
    # figure normalisation for numeric exact-match; see the runtime check below)
    "train": {"errors", "ids", "registry", "settings", "paths", "curate"},
    "cli": SHARED | {"ingest", "distill", "curate", "review_ui", "train", "cli"},
}


def stillroom_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "stillroom" and len(parts) > 1:
                found.add(parts[1])
    return found


def part_of(path: Path) -> str:
    top = path.relative_to(PKG).parts[0].removesuffix(".py")
    if top == "__main__":
        return "cli"
    return top if top in ALLOWED else "shared"


def test_train_never_loads_the_store():
    import subprocess
    import sys

    modules = [f"stillroom.train.{p.stem}" for p in (PKG / "train").glob("*.py") if p.stem != "__init__"]
    code = (f"import sys, importlib; [importlib.import_module(m) for m in {modules!r}]; "
            "print([m for m in ('stillroom.store', 'stillroom.project', 'duckdb') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_imports_point_the_way_the_data_flows():
    wrong = []
    for path in sorted(PKG.rglob("*.py")):
        part = part_of(path)
        for target in stillroom_imports(path) - ALLOWED[part] - {part}:
            wrong.append(f"{path.relative_to(PKG.parent)} ({part}) imports stillroom.{target}")
    assert wrong == []
