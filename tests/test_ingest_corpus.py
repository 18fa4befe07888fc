"""Every real-world file in ../shared ends as a document or as a clear, reported failure — never a traceback."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

# The user passwords listed in ../shared/pdf-corpus/SOURCES.md.
PASSWORDS = ["baz", "test", "ELXRTQWS", "abc", "æøå", "Hello", "pässwört", "openpassword"]
KNOWN_FAILURES = re.compile(r"no extractable text|no text layer|encrypted PDF|not a readable PDF|PDF has no pages|"
                            r"cannot be read|extension does not match|crashed the PDF library")


def ingest(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stillroom", "ingest", *args, "--json", "-p", str(root)],
                          capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_pdf_corpus_all_accounted_for(shared_dir, tmp_path):
    from stillroom.project import init_project

    project, _ = init_project(tmp_path / "p")
    corpus = shared_dir / "pdf-corpus"
    files = sorted(corpus.rglob("*.pdf")) + [corpus / "SOURCES.md"]
    args = [a for pw in PASSWORDS for a in ("--password", pw)]
    result = ingest(project.root, str(corpus), *args)
    assert "Traceback" not in result.stderr
    assert result.returncode == 1  # some files are broken on purpose
    summary = json.loads(result.stdout)
    failed = {f["path"]: f["error"] for f in summary["failed"]}
    stored = {p for (p,) in project.store().query("SELECT path FROM document_versions")}
    assert stored | set(failed) == {str(f) for f in files}, "every file is a document or a reported failure"
    assert not stored & set(failed)
    for path, error in failed.items():
        assert KNOWN_FAILURES.search(error), f"{path}: unexpected failure {error!r}"
    assert len(stored) > 600
    # The encrypted samples whose passwords SOURCES.md lists are opened.
    assert str(corpus / "pdfminer-samples" / "encryption__aes-128.pdf") in stored
    assert str(corpus / "py-pdf-sample-files" / "005-libreoffice-writer-password__libreoffice-writer-password.pdf") in stored
    # Chinese and Japanese text survive extraction.
    cjk = project.store().scalar("SELECT count(*) FROM chunks WHERE regexp_matches(text, ?)",
                                 ["[\u3040-\u30ff\u4e00-\u9fff]{20}"])
    assert cjk > 10
    again = ingest(project.root, str(corpus), *args)
    assert json.loads(again.stdout)["documents"] == 0  # nothing new, nothing duplicated


def test_d2l_markdown_corpus(shared_dir, tmp_path):
    from stillroom.project import init_project

    project, _ = init_project(tmp_path / "p")
    result = ingest(project.root, str(shared_dir / "text-corpus" / "d2l-zh"))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["documents"] == len(list((shared_dir / "text-corpus" / "d2l-zh").glob("*.md")))
    store = project.store()
    bad = store.scalar("SELECT count(*) FROM chunks c JOIN pages p ON p.document_id = c.document_id "
                       "WHERE substr(p.text, c.char_start - p.char_start + 1, c.char_end - c.char_start) <> c.text")
    assert bad == 0
    assert store.scalar("SELECT count(*) FROM chunks WHERE heading_path = ''") < summary["chunks"] * 0.05
    assert store.scalar("SELECT max(n_tokens) FROM chunks") <= 384
