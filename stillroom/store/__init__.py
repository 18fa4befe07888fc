"""The project's DuckDB store: open, migrate, and hand out short transactions under the project lock."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import duckdb

from stillroom.store.lock import FileLock
from stillroom.store.migrations import migrate

# A holder that has had the file this long steps aside at its next transaction boundary
# when another process is waiting; short enough for a reviewer's click to feel instant.
HOLD_WHEN_CONTENDED_S = 0.2


class Store:
    """`with store.transaction() as con:` is the only way stillroom code writes.

    Connections are opened lazily and kept while this process works, so a batch of small
    transactions costs one open; they are closed (and the lock released) as soon as another
    process queues for the file, or when the outermost `session()` ends.
    """

    def __init__(self, db_path: Path, lock_timeout_s: float = 600.0) -> None:
        self.db_path = Path(db_path)
        state = self.db_path.parent / ".stillroom"
        state.mkdir(exist_ok=True)
        self._lock = FileLock(state / "db.lock", timeout_s=lock_timeout_s)
        self._con: duckdb.DuckDBPyConnection | None = None
        self._depth = 0
        self._in_tx = False
        self._pinned = 0  # open connect() blocks that hold a connection object

    def _open(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._lock.acquire()
            try:
                con = duckdb.connect(str(self.db_path))
                migrate(con, self.db_path)
            except BaseException:
                self._lock.release()
                raise
            self._con = con
        return self._con

    def _close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
        self._lock.release()

    @contextmanager
    def session(self) -> Iterator["Store"]:
        """Keep the file open across many transactions (batch work); nested sessions are free."""
        self._depth += 1
        try:
            yield self
        finally:
            self._depth -= 1
            if self._depth == 0 and not self._in_tx:
                self._close()

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for reads (or DDL) under the lock, without an explicit transaction."""
        with self.session():
            self._pinned += 1
            try:
                yield self._open()
            finally:
                self._pinned -= 1

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All-or-nothing: a crash (even SIGKILL) inside leaves nothing of it in the file."""
        if self._in_tx:
            yield self._con  # nested: part of the outer transaction
            return
        with self.session():
            con = self._open()
            con.execute("BEGIN TRANSACTION")
            self._in_tx = True
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            else:
                con.execute("COMMIT")
            finally:
                self._in_tx = False
            self._yield_if_contended()

    def others_waiting(self) -> bool:
        """True when another live process is queued for this project's database."""
        return self._lock.others_waiting()

    def _yield_if_contended(self) -> None:
        held = time.monotonic() - self._lock.acquired_at
        if self._pinned == 0 and self._con is not None and held > HOLD_WHEN_CONTENDED_S and self._lock.others_waiting():
            self._close()
            time.sleep(0.005)  # let the waiter take the lock before we ask again

    def query(self, sql: str, params: Any = None) -> list[tuple]:
        with self.connect() as con:
            return con.execute(sql, params).fetchall()

    def query_dicts(self, sql: str, params: Any = None) -> list[dict]:
        with self.connect() as con:
            cur = con.execute(sql, params)
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, row)) for row in cur.fetchall()]

    def scalar(self, sql: str, params: Any = None) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None


_KEYED: dict[str, bool] = {}


def insert_columns(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, list]) -> int:
    """Bulk insert through Arrow: ~200× faster than executemany into a keyed table.

    `columns` maps column name → values (all the same length). In a table with a key, rows whose
    key exists are left as they are, which is what makes content-hash inserts idempotent.
    """
    import pyarrow as pa

    n = len(next(iter(columns.values()), []))
    if n == 0:
        return 0
    if table not in _KEYED:  # the schema only changes through migrations, so once per process is enough
        _KEYED[table] = bool(con.execute(
            "SELECT count(*) FROM duckdb_constraints() WHERE table_name = ? "
            "AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')", [table]).fetchall()[0][0])
    else:  # a statement also closes a caller's half-read result, which register() refuses to follow
        con.execute("SELECT 1").fetchall()
    keyed = _KEYED[table]
    name = f"_stillroom_insert_{table}"
    cols = ", ".join(columns)
    con.register(name, pa.table(columns))
    try:
        con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {name}"
                    + (" ON CONFLICT DO NOTHING" if keyed else ""))
    finally:
        try:
            con.unregister(name)
        except duckdb.Error:
            pass  # the transaction is already aborted; the caller's error is the one that matters
    return n
