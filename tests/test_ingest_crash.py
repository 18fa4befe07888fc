"""SIGKILL mid-ingest leaves no half document; running the same command again finishes the job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from stillroom.project import init_project
from tests.ingest_inputs import make_policy_pdf

N_FILES = 40


def test_kill_mid_ingest_then_rerun(tmp_path):
    project, _ = init_project(tmp_path / "p")
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(N_FILES):
        make_policy_pdf(docs / f"policy-{i:02d}.pdf", pages=3 + i % 4)
        (docs / f"notes-{i:02d}.md").write_text(f"# 第{i}节\n\n" + "报销上限为每次3,000元。" * (50 + i), encoding="utf-8")
    cmd = [sys.executable, "-m", "stillroom", "ingest", str(docs), "--json", "-p", str(project.root)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    store = project.store()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if store.scalar("SELECT count(*) FROM documents") >= 5:
            break
        time.sleep(0.05)
    killed = proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert killed, "ingest finished before it could be killed; make the batch larger"

    partial = store.scalar("SELECT count(*) FROM documents")
    assert 0 < partial < 2 * N_FILES
    # No half documents: every stored document has all its pages, its chunks and its version row.
    broken = store.query("""
        SELECT d.file_name FROM documents d
        WHERE d.n_pages <> (SELECT count(*) FROM pages p WHERE p.document_id = d.id)
           OR NOT EXISTS (SELECT 1 FROM chunks c WHERE c.document_id = d.id)
           OR NOT EXISTS (SELECT 1 FROM document_versions v WHERE v.document_id = d.id)""")
    assert broken == []

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["unchanged"] == partial and summary["documents"] == 2 * N_FILES - partial
    assert store.scalar("SELECT count(*) FROM documents") == 2 * N_FILES
    assert store.scalar("SELECT count(*) FROM document_versions") == 2 * N_FILES
    assert store.scalar("SELECT count(*) - count(DISTINCT id) FROM chunks") == 0
