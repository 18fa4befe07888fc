"""Each format, generated here from real libraries, ingests with exact provenance; bad input is reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stillroom.project import init_project
from tests.ingest_inputs import (HTML, make_docx, make_encrypted_pdf, make_english_pdf, make_image_only_pdf,
                                 make_policy_pdf)


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stillroom", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def project(tmp_path):
    proj, _ = init_project(tmp_path / "proj")
    return proj


def chunks_of(project, file_name: str) -> list[dict]:
    return project.store().query_dicts(
        "SELECT c.*, d.file_name FROM chunks c JOIN documents d ON d.id = c.document_id "
        "WHERE d.file_name = ? ORDER BY seq", [file_name])


def assert_spans_exact(project) -> None:
    """page_text[start:end] == chunk_text for every chunk on one page; document text for all."""
    store = project.store()
    docs = store.query("SELECT id FROM documents")
    assert docs
    for (doc_id,) in docs:
        pages = store.query_dicts("SELECT page_no, char_start, text FROM pages WHERE document_id = ? ORDER BY page_no",
                                  [doc_id])
        doc_text = "\n\n".join(p["text"] for p in pages)
        for p in pages:
            assert doc_text[p["char_start"]:p["char_start"] + len(p["text"])] == p["text"]
        for c in store.query_dicts("SELECT * FROM chunks WHERE document_id = ?", [doc_id]):
            assert doc_text[c["char_start"]:c["char_end"]] == c["text"]
            if c["page_start"] == c["page_end"]:
                page = next(p for p in pages if p["page_no"] == c["page_start"])
                s = c["char_start"] - page["char_start"]
                assert page["text"][s:s + len(c["text"])] == c["text"]


def test_chinese_pdf_headings_header_footer_and_spans(tmp_path, project):
    from stillroom.ingest import ingest_paths

    pdf = make_policy_pdf(tmp_path / "policy.pdf", pages=4)
    report = ingest_paths(project.store(), project.settings, [str(pdf)])
    assert report.documents == 1 and not report.failed
    pages = project.store().query_dicts("SELECT text FROM pages ORDER BY page_no")
    assert len(pages) == 4
    for p in pages:
        assert "某某公司差旅费报销制度" not in p["text"]  # running header dropped
        assert not any(line.strip().isdigit() for line in p["text"].splitlines())  # page numbers dropped
    chunks = chunks_of(project, "policy.pdf")
    paths = {c["heading_path"] for c in chunks}
    assert "第二章 差旅费 > 2.1 住宿标准" in paths and "第二章 差旅费 > 2.2 交通费" in paths
    joined = "".join(c["text"] for c in chunks)
    assert "不超过500元，一线城市" in joined  # wrapped Chinese lines joined without spaces
    assert "1,200元" in joined
    assert any("经理 | 800元 | 300元" in c["text"] for c in chunks)  # a table row stays whole
    assert_spans_exact(project)


def test_a_two_page_pdf_loses_the_running_header_both_pages_share(tmp_path, project):
    from stillroom.ingest import ingest_paths

    pdf = make_policy_pdf(tmp_path / "short.pdf", pages=2)
    assert not ingest_paths(project.store(), project.settings, [str(pdf)]).failed
    pages = project.store().query_dicts("SELECT text FROM pages ORDER BY page_no")
    assert len(pages) == 2 and all("某某公司差旅费报销制度" not in p["text"] for p in pages)
    assert "不超过500元" in "".join(p["text"] for p in pages)  # the body stays


def test_english_hyphenation_joined(tmp_path, project):
    from stillroom.ingest import ingest_paths

    ingest_paths(project.store(), project.settings, [str(make_english_pdf(tmp_path / "en.pdf"))])
    text = " ".join(c["text"] for c in chunks_of(project, "en.pdf"))
    assert "reimbursement request" in text and "65 percent of" in text
    assert chunks_of(project, "en.pdf")[0]["heading_path"] == "Travel Policy"


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8-sig", "utf-16", "utf-8"])
def test_text_encodings_detected(tmp_path, project, encoding):
    from stillroom.ingest import ingest_paths

    text = "第一章 总则\n\n为规范公司差旅费管理，特制定本办法。出差补助每天１２０元，住宿费不超过３０，０００元每年。\n"
    path = tmp_path / f"policy-{encoding}.txt"
    path.write_bytes(text.encode(encoding))
    report = ingest_paths(project.store(), project.settings, [str(path)])
    assert report.documents == 1, report.failed
    doc = project.store().query_dicts("SELECT encoding, normalized FROM documents")[0]
    assert doc["normalized"] is True
    assert doc["encoding"].replace("_", "-").lower() in {"gb18030", "utf-8-sig", "utf-16", "utf-8"}
    chunk = chunks_of(project, path.name)[0]
    assert "出差补助每天120元" in chunk["text"] and "30,000元" in chunk["text"]  # full-width normalised
    assert chunk["heading_path"] == "第一章 总则"


def test_docx_and_html(tmp_path, project):
    from stillroom.ingest import ingest_paths

    (tmp_path / "p.html").write_text(HTML, encoding="utf-8")
    report = ingest_paths(project.store(), project.settings, [str(make_docx(tmp_path / "p.docx")),
                                                              str(tmp_path / "p.html")])
    assert report.documents == 2, report.failed
    docx_chunks = chunks_of(project, "p.docx")
    assert docx_chunks[0]["heading_path"] == "报销制度 > 第一节 餐费"
    assert "| 北京 | 800元 |" in docx_chunks[-1]["text"]
    html_text = " ".join(c["text"] for c in chunks_of(project, "p.html"))
    assert "alert" not in html_text and "| London | £180 |" in html_text
    assert {c["heading_path"] for c in chunks_of(project, "p.html")} >= {"Expense policy > Hotels"}
    assert_spans_exact(project)


def test_idempotent_and_versions(tmp_path, project):
    from stillroom.ingest import ingest_paths

    path = tmp_path / "notes.md"
    path.write_text("# Notes\n\nThe budget is 5,000 dollars.\n", encoding="utf-8")
    store, settings = project.store(), project.settings
    first = ingest_paths(store, settings, [str(path)])
    again = ingest_paths(store, settings, [str(path)])
    assert (first.documents, again.documents, again.unchanged) == (1, 0, 1)
    old_chunks = store.query("SELECT id FROM chunks")
    path.write_text("# Notes\n\nThe budget is 6,000 dollars.\n", encoding="utf-8")
    changed = ingest_paths(store, settings, [str(path)])
    assert changed.documents == 1
    versions = store.query("SELECT version FROM document_versions WHERE path = ? ORDER BY version", [str(path)])
    assert versions == [(1,), (2,)]
    assert set(old_chunks) <= set(store.query("SELECT id FROM chunks"))  # the old version's chunks stay
    assert store.scalar("SELECT count(*) FROM documents") == 2


def test_bad_inputs_reported_and_batch_continues(tmp_path):
    root = tmp_path / "proj"
    assert run("init", str(root), cwd=tmp_path).returncode == 0
    inputs = tmp_path / "in"
    inputs.mkdir()
    make_policy_pdf(inputs / "good.pdf", pages=2)
    make_encrypted_pdf(inputs / "locked.pdf")
    (inputs / "truncated.pdf").write_bytes((inputs / "good.pdf").read_bytes()[:300])
    make_image_only_pdf(inputs / "scan.pdf")
    (inputs / "empty.txt").write_bytes(b"")
    (inputs / "image.pdf").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    (inputs / "data.xyz").write_text("hello")
    (tmp_path / "nothing").mkdir()
    result = run("ingest", str(inputs), str(inputs / "data.xyz"), str(tmp_path / "missing.pdf"),
                 str(tmp_path / "nothing"), "--json", cwd=root)
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    assert summary["documents"] == 1
    errors = {Path(f["path"]).name: f["error"] for f in summary["failed"]}
    assert "needs a password" in errors["locked.pdf"] and "--password" in errors["locked.pdf"]
    assert "truncated" in errors["truncated.pdf"] or "not a readable PDF" in errors["truncated.pdf"]
    assert "no text layer" in errors["scan.pdf"] and "OCR" in errors["scan.pdf"]
    assert "empty file" in errors["empty.txt"]
    assert "extension does not match" in errors["image.pdf"]
    assert "unsupported file type .xyz" in errors["data.xyz"]
    assert "does not exist" in errors["missing.pdf"]
    assert "no supported files" in errors["nothing"]
    for name in errors:  # each failure is one line on stderr naming the file
        assert any(name in line for line in result.stderr.splitlines())
    assert "Traceback" not in result.stderr
    unlocked = run("ingest", str(inputs / "locked.pdf"), "--password", "s3cret", "--json", cwd=root)
    assert unlocked.returncode == 0 and json.loads(unlocked.stdout)["documents"] == 1


def test_file_vanishing_mid_run_is_reported(tmp_path, project):
    from stillroom.ingest.pipeline import _process_all

    path = tmp_path / "gone.md"
    path.write_text("# Gone\n\nSoon.\n", encoding="utf-8")
    path.unlink()  # hashed and planned, then deleted before extraction
    [(name, outcome)] = list(_process_all([(str(path), "0" * 64, 10)], project.settings, ()))
    assert "vanished" in str(outcome) and name == str(path)
