"""The schema, as an append-only list of migrations. Never edit a shipped one; add the next."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import duckdb

from stillroom.errors import SchemaTooNew


def m001_initial(con: duckdb.DuckDBPyConnection) -> None:
    """Every stage's tables. Stages write only their own; see docs/data-model.md."""
    con.execute("""
    -- ingest ---------------------------------------------------------------
    CREATE TABLE documents (            -- one row per distinct file content
        id VARCHAR PRIMARY KEY,         -- sha256 of the file's bytes
        file_name VARCHAR NOT NULL,
        format VARCHAR NOT NULL,        -- pdf, txt, md, html, docx
        size_bytes BIGINT NOT NULL,
        n_pages INTEGER NOT NULL,
        encoding VARCHAR,               -- detected text encoding (text formats)
        title VARCHAR,
        normalized BOOLEAN NOT NULL,    -- full-width digits/punctuation were rewritten
        dropped_lines INTEGER NOT NULL, -- running headers/footers/page numbers removed
        meta JSON,
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    CREATE TABLE document_versions (    -- the history of what each path contained
        path VARCHAR NOT NULL,
        version INTEGER NOT NULL,
        document_id VARCHAR NOT NULL,
        ingested_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
        PRIMARY KEY (path, version)
    );
    CREATE TABLE pages (
        document_id VARCHAR NOT NULL,
        page_no INTEGER NOT NULL,       -- 1-based; text formats are one page
        char_start BIGINT NOT NULL,     -- where this page starts in the document text
        text VARCHAR NOT NULL,          -- cleaned page text; chunks point into it
        normalized BOOLEAN NOT NULL,
        PRIMARY KEY (document_id, page_no)
    );
    CREATE TABLE chunks (
        id VARCHAR PRIMARY KEY,         -- hash of document id + span + text
        document_id VARCHAR NOT NULL,
        seq INTEGER NOT NULL,
        page_start INTEGER NOT NULL,
        page_end INTEGER NOT NULL,
        char_start BIGINT NOT NULL,     -- span in the document text (pages joined by a blank line)
        char_end BIGINT NOT NULL,
        heading_path VARCHAR NOT NULL,  -- e.g. 第二章 > 2.3 差旅费
        text VARCHAR NOT NULL,
        n_tokens INTEGER NOT NULL,
        tokenizer VARCHAR NOT NULL,
        has_figures BOOLEAN NOT NULL,   -- contains digits: candidates for numeric tasks
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    -- runs (every stage) ----------------------------------------------------
    CREATE TABLE runs (
        id VARCHAR PRIMARY KEY,
        stage VARCHAR NOT NULL,         -- ingest, distill, curate, export, train, eval
        status VARCHAR NOT NULL,        -- running, done, failed, stopped
        started_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
        finished_at TIMESTAMP,
        pid INTEGER,
        args JSON,
        summary JSON
    );
    CREATE TABLE run_events (           -- per-input outcomes and errors a run reported
        run_id VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
        level VARCHAR NOT NULL,         -- info, warning, error
        subject VARCHAR,                -- a file, a unit, an item
        message VARCHAR NOT NULL
    );
    -- distill ---------------------------------------------------------------
    CREATE TABLE work_units (
        id VARCHAR PRIMARY KEY,         -- hash of chunk, task, prompt hash, provider/model, sample index
        run_id VARCHAR NOT NULL,
        chunk_id VARCHAR NOT NULL,
        task VARCHAR NOT NULL,
        prompt_hash VARCHAR NOT NULL,
        provider VARCHAR NOT NULL,
        model VARCHAR NOT NULL,
        sample_index INTEGER NOT NULL,
        status VARCHAR NOT NULL,        -- pending, done, failed
        fail_reason VARCHAR,
        attempts INTEGER NOT NULL DEFAULT 0,
        updated_at TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    CREATE TABLE calls (                -- every provider call; key alias only, never the key
        unit_id VARCHAR,
        run_id VARCHAR,
        provider VARCHAR NOT NULL,
        key_alias VARCHAR,
        model VARCHAR,
        started_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
        latency_ms DOUBLE,
        tokens_in INTEGER,
        tokens_out INTEGER,
        status VARCHAR NOT NULL,        -- ok, rate_limited, quota, auth, timeout, server, invalid, refused
        error_class VARCHAR,
        raw_text VARCHAR                -- the reply, kept for failed attempts
    );
    CREATE TABLE key_state (
        provider VARCHAR NOT NULL,
        alias VARCHAR NOT NULL,         -- gemini#3 or a short hash
        state VARCHAR NOT NULL,         -- ok, cooling, retired, disabled
        cooling_until TIMESTAMP,
        requests BIGINT NOT NULL DEFAULT 0,
        rate_limited BIGINT NOT NULL DEFAULT 0,
        tokens BIGINT NOT NULL DEFAULT 0,
        last_error VARCHAR,
        updated_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
        PRIMARY KEY (provider, alias)
    );
    CREATE TABLE items (
        id VARCHAR PRIMARY KEY,         -- hash of unit id + content (distilled) or of content (imported)
        unit_id VARCHAR,                -- null for imported items
        chunk_id VARCHAR,
        task VARCHAR NOT NULL,
        origin VARCHAR NOT NULL,        -- distill, import
        external_id VARCHAR,
        question VARCHAR,               -- first user turn (for search and scoring)
        answer VARCHAR,                 -- last assistant turn
        messages JSON NOT NULL,         -- [{role, content}, ...]
        prompt_hash VARCHAR,
        provider VARCHAR,
        model VARCHAR,
        meta JSON,
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    -- curate / review -------------------------------------------------------
    CREATE TABLE item_revisions (       -- a reviewer's edit; the original item is never changed
        id VARCHAR PRIMARY KEY,
        item_id VARCHAR NOT NULL,
        revision INTEGER NOT NULL,
        question VARCHAR,
        answer VARCHAR,
        messages JSON NOT NULL,
        author VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    CREATE TABLE scores (
        item_id VARCHAR NOT NULL,
        revision INTEGER NOT NULL DEFAULT 0,
        scorer VARCHAR NOT NULL,
        scorer_version INTEGER NOT NULL,
        value DOUBLE NOT NULL,          -- in [0, 1]
        hard_fail BOOLEAN NOT NULL DEFAULT false,
        evidence JSON,
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
        PRIMARY KEY (item_id, revision, scorer, scorer_version)
    );
    CREATE TABLE duplicates (
        item_id VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,          -- exact, near
        group_id VARCHAR NOT NULL,
        representative_id VARCHAR NOT NULL,
        similarity DOUBLE,
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
        PRIMARY KEY (item_id, kind)
    );
    CREATE TABLE review_queue (
        item_id VARCHAR PRIMARY KEY,
        priority DOUBLE NOT NULL,
        reason VARCHAR NOT NULL,        -- hard_fail, low_score, audit
        stratum VARCHAR,                -- task × document × score band (audit sample)
        lease_owner VARCHAR,
        lease_expires TIMESTAMP,
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    CREATE TABLE reviews (              -- decisions are appended, never updated
        id VARCHAR PRIMARY KEY,
        item_id VARCHAR NOT NULL,
        revision INTEGER NOT NULL DEFAULT 0,
        reviewer VARCHAR NOT NULL,
        decision VARCHAR NOT NULL,      -- approve, reject, edit, undo
        reason_code VARCHAR,
        note VARCHAR,
        undoes VARCHAR,                 -- for an undo: the id of the decision it withdraws
        seq BIGINT NOT NULL DEFAULT 0,  -- order of decisions (timestamps can tie within a batch)
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    CREATE TABLE users (
        name VARCHAR PRIMARY KEY,
        password_hash VARCHAR NOT NULL,
        is_admin BOOLEAN NOT NULL DEFAULT false,
        disabled BOOLEAN NOT NULL DEFAULT false,
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    CREATE TABLE audit_log (
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
        actor VARCHAR NOT NULL,
        action VARCHAR NOT NULL,
        subject VARCHAR,
        detail JSON
    );
    -- export ----------------------------------------------------------------
    CREATE TABLE snapshots (
        id VARCHAR PRIMARY KEY,         -- hash of the manifest's file hashes
        path VARCHAR NOT NULL,
        format VARCHAR NOT NULL,
        manifest JSON NOT NULL,
        n_items BIGINT NOT NULL DEFAULT 0,
        forced BOOLEAN NOT NULL DEFAULT false,
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    """)


def m002_scores_without_key(con: duckdb.DuckDBPyConnection) -> None:
    """Score rows are derived data written in bulk, eight per item: the four-column key made every insert about three
    times dearer (a million items: tens of seconds) and served no lookup. Rows stay unique because curate replaces a
    revision's rows together."""
    con.execute("""
    CREATE TABLE scores_unkeyed (
        item_id VARCHAR NOT NULL,
        revision INTEGER NOT NULL DEFAULT 0,
        scorer VARCHAR NOT NULL,
        scorer_version INTEGER NOT NULL,
        value DOUBLE NOT NULL,          -- in [0, 1]
        hard_fail BOOLEAN NOT NULL DEFAULT false,
        evidence JSON,
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    INSERT INTO scores_unkeyed SELECT item_id, revision, scorer, scorer_version, value, hard_fail, evidence, created_at
    FROM scores;
    DROP TABLE scores;
    ALTER TABLE scores_unkeyed RENAME TO scores;
    """)


def m003_duplicates_without_key(con: duckdb.DuckDBPyConnection) -> None:
    """`duplicates` is rebuilt whole by every curate run: its (item_id, kind) key cost about 9 s per commit at a million
    items (the index is rewritten) and served no lookup. Rows stay unique: a rebuild writes an item once per kind."""
    con.execute("""
    CREATE TABLE duplicates_unkeyed (
        item_id VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,          -- exact, near
        group_id VARCHAR NOT NULL,
        representative_id VARCHAR NOT NULL,
        similarity DOUBLE,
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    INSERT INTO duplicates_unkeyed SELECT item_id, kind, group_id, representative_id, similarity, created_at
    FROM duplicates;
    DROP TABLE duplicates;
    ALTER TABLE duplicates_unkeyed RENAME TO duplicates;
    """)


# Append only. The database's version is the number of migrations applied.
MIGRATIONS: list[Callable[[duckdb.DuckDBPyConnection], None]] = [
    m001_initial,
    m002_scores_without_key,
    m003_duplicates_without_key,
]


def migrate(con: duckdb.DuckDBPyConnection, db_path: Path) -> int:
    con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, name VARCHAR NOT NULL, "
                "applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)")
    current = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0][0]
    if current > len(MIGRATIONS):
        raise SchemaTooNew(
            f"{db_path}: database schema version {current} is newer than this stillroom knows "
            f"({len(MIGRATIONS)}) — upgrade stillroom (pip install -U stillroom) to open it"
        )
    for version, step in enumerate(MIGRATIONS[current:], start=current + 1):
        con.execute("BEGIN TRANSACTION")
        try:
            step(con)
            con.execute("INSERT INTO schema_version (version, name) VALUES (?, ?)", [version, step.__name__])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)
