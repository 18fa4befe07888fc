"""The store: migrations, refusing a newer schema, all-or-nothing transactions, and sharing the file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from stillroom.errors import SchemaTooNew
from stillroom.store import Store, insert_columns
from stillroom.store.migrations import MIGRATIONS


def test_new_database_is_at_latest_version(tmp_path):
    store = Store(tmp_path / "db.duckdb")
    assert store.scalar("SELECT max(version) FROM schema_version") == len(MIGRATIONS)
    tables = {r[0] for r in store.query("SELECT table_name FROM information_schema.tables")}
    assert {"documents", "document_versions", "pages", "chunks", "work_units", "items", "item_revisions", "scores",
            "duplicates", "reviews", "runs", "snapshots"} <= tables


def test_older_database_is_migrated(tmp_path):
    path = tmp_path / "db.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, name VARCHAR NOT NULL, "
                "applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)")
    con.close()  # a database from before any migration ran
    assert Store(path).scalar("SELECT count(*) FROM schema_version") == len(MIGRATIONS)


def test_newer_database_is_refused(tmp_path):
    path = tmp_path / "db.duckdb"
    Store(path).query("SELECT 1")
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_version (version, name) VALUES (?, 'from_the_future')", [len(MIGRATIONS) + 1])
    con.close()
    with pytest.raises(SchemaTooNew, match="upgrade stillroom"):
        Store(path).query("SELECT 1")


def test_transaction_rolls_back_on_error(tmp_path):
    store = Store(tmp_path / "db.duckdb")
    with pytest.raises(RuntimeError):
        with store.transaction() as con:
            insert_columns(con, "run_events", {"run_id": ["r1"], "level": ["info"], "message": ["x"]})
            raise RuntimeError("boom")
    assert store.scalar("SELECT count(*) FROM run_events") == 0


WRITER = textwrap.dedent("""
    import sys, time
    from stillroom.store import Store
    store = Store(sys.argv[1])
    with store.session():  # a long batch, as distill would run it
        for i in range(int(sys.argv[3])):
            with store.transaction() as con:
                con.execute("INSERT INTO run_events (run_id, level, message) VALUES (?, 'info', ?)", [sys.argv[2], str(i)])
            time.sleep(0.002)
""")


def test_two_processes_share_the_file_without_lock_errors(tmp_path):
    """A long batch writer and a second writer interleave: nothing fails with 'database is locked', nothing is lost."""
    db = tmp_path / "db.duckdb"
    Store(db).query("SELECT 1")
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    procs = [subprocess.Popen([sys.executable, str(script), str(db), name, "150"], stderr=subprocess.PIPE, text=True)
             for name in ("batch", "server")]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    counts = dict(Store(db).query("SELECT run_id, count(*) FROM run_events GROUP BY run_id"))
    assert counts == {"batch": 150, "server": 150}
