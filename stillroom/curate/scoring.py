"""Score items: every configured scorer on each item's current revision, plus the weighted "overall" score.

The items to score are planned with one query (their row numbers), then read a segment at a time: a
query over a row-number range of `items` costs the same at any store size, where a page of ids joined
to whole tables grows with it. Segments are split into pages scored in worker processes (the scorers
are regex-heavy Python; figure extraction from a chunk is cached per process, and items come in the
order they were stored, so a chunk's items arrive together). Pages travel as Arrow batches both ways
and their rows go into `scores` one insert (and commit) per segment. Score rows are derived data: re-scoring an item's
revision replaces that revision's rows, never the item.
"""

from __future__ import annotations

import os
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, Iterable, Iterator

from stillroom.curate.scorers import SCORERS, Scorer
from stillroom.curate.scoring_batch import COLUMNS, score_rows
from stillroom.curate.state import CURRENT_REVISION
from stillroom.errors import UsageError

PAGE = 5_000
SEGMENT = 50_000  # items per read: one short query (and lock hold) each, a bounded amount in memory
PARALLEL_FROM = 10_000  # below this, starting worker processes costs more than it saves

_PLAN = f"""
SELECT i.rowid FROM items i LEFT JOIN ({CURRENT_REVISION}) cur ON cur.item_id = i.id
WHERE {{where}}
ORDER BY i.rowid
"""
_TODO = ("NOT EXISTS (SELECT 1 FROM scores s WHERE s.item_id = i.id AND s.revision = coalesce(cur.revision, 0) "
         "AND s.scorer = 'overall')")
_SCORED = ("SELECT item_id, revision FROM scores WHERE scorer = 'overall' AND (item_id, revision) IN "
           "(SELECT item_id, revision FROM new_scores WHERE scorer = 'overall')")
_ROWS = f"""
SELECT i.id, coalesce(cur.revision, 0) AS revision, i.task, coalesce(r.question, i.question) AS question,
       coalesce(r.answer, i.answer) AS answer, CAST(coalesce(r.messages, i.messages) AS VARCHAR) AS messages,
       CAST(i.meta AS VARCHAR) AS meta, i.chunk_id, c.text
FROM items i
LEFT JOIN ({CURRENT_REVISION}) cur ON cur.item_id = i.id
LEFT JOIN item_revisions r ON r.item_id = i.id AND r.revision = cur.revision
LEFT JOIN (SELECT id, text FROM chunks WHERE id IN (SELECT chunk_id FROM items WHERE rowid BETWEEN $first AND $last)) c
  ON c.id = i.chunk_id
WHERE i.rowid BETWEEN $first AND $last{{and_in}}
ORDER BY i.rowid
"""
# A segment whose row numbers are a whole range (scoring everything, or a run of new items) needs no list of them.
_ROWS_RANGE = _ROWS.format(and_in="")
_ROWS_LISTED = _ROWS.format(and_in=" AND i.rowid IN (SELECT unnest($rows::BIGINT[]))")


def load_scorers(settings: Any) -> list[tuple[str, Scorer]]:
    """The [curate] scorers, checked against the registry with a message that names the setting to fix."""
    known = SCORERS.names()
    unknown = [n for n in [*settings.scorers, *settings.weights] if n not in known]
    if unknown:
        raise UsageError(f"stillroom.toml [curate]: unknown scorer(s) {sorted(set(unknown))} in scorers/weights; "
                         f"known: {', '.join(known)}")
    if not any(settings.weights.get(n, 0) > 0 for n in settings.scorers):
        raise UsageError("stillroom.toml [curate] weights: none of the enabled scorers has a positive weight — "
                         "give at least one of " + ", ".join(settings.scorers) + " a weight above 0")
    return [(name, SCORERS.get(name)(settings)) for name in settings.scorers]


_worker: dict = {}


def _init_worker(settings: Any) -> None:
    _worker["scorers"] = load_scorers(settings)
    _worker["weights"] = settings.weights


def _score_rows(rows: Iterable[tuple]) -> Any:
    return score_rows(rows, _worker["scorers"], _worker["weights"])


def _score_batch(batch: Any) -> Any:
    """A worker's page: Arrow rows in (as `_ROWS` selects them, chunk texts dictionary-encoded by `_pages`), an
    Arrow table of score rows out."""
    *columns, chunk_text = batch.columns
    return _score_rows(zip(*(c.to_pylist() for c in columns), _shared_strings(chunk_text)))


def _shared_strings(encoded: Any) -> list:
    """A dictionary-encoded column as a list, one str object per distinct value: the scorers' per-chunk caches
    compare a chunk's text once per item of it (the same object compares at once)."""
    texts = encoded.dictionary.to_pylist()
    return [None if k is None else texts[k] for k in encoded.indices.to_pylist()]


def _text_once(page: Any) -> Any:
    """The page with its chunk texts dictionary-encoded: a chunk's text travels to the worker once, not once per
    item of it (five times the bytes to pickle and pipe)."""
    import pyarrow.compute as pc

    last = page.num_columns - 1
    return page.set_column(last, page.schema.field(last).name, pc.dictionary_encode(page.column(last)))


def score_items(store: Any, settings: Any, item_ids: Iterable[str] | None = None, *, force: bool = False) -> dict:
    """Score the current revision of `item_ids` (all not yet scored when None; all items with force=True).

    `settings` is the whole Settings or its [curate] section. Returns counts for the CLI and the run summary.
    """
    cfg = getattr(settings, "curate", settings)
    load_scorers(cfg)  # fail on bad config before touching anything
    started = time.monotonic()
    summary = {"scored": 0, "hard_fail": 0, "missing_source": 0}
    with store.session():
        rowids = _plan(store, item_ids, force)
        # The todo query found items with no rows for their revision (a revision's rows are written in one
        # insert with its "overall" row), so there is nothing to delete; one scored by another process since is
        # left out at the insert (`_unscored`).
        replace = item_ids is not None or force
        workers = min(os.cpu_count() or 1, 8) if len(rowids) >= PARALLEL_FROM else 1
        done = _Writer(store, summary, replace)
        if workers > 1:
            with ProcessPoolExecutor(workers, mp_context=get_context("fork"), initializer=_init_worker,
                                     initargs=(cfg,)) as pool:
                inflight: deque = deque()  # bounded, so a million items never sit in memory at once
                for batch in _pages(store, rowids):
                    inflight.append((pool.submit(_score_batch, batch), batch.num_rows))
                    if len(inflight) > workers:
                        future, n = inflight.popleft()
                        done.add(future.result(), n)
                while inflight:
                    future, n = inflight.popleft()
                    done.add(future.result(), n)
        else:
            _init_worker(cfg)
            for batch in _pages(store, rowids):
                done.add(_score_batch(batch), batch.num_rows)
        done.flush()
    summary["seconds"] = round(time.monotonic() - started, 2)
    return summary


def _plan(store: Any, item_ids: Iterable[str] | None, force: bool) -> list[int]:
    """Row numbers of the items to score, ascending (the order they were stored in)."""
    if item_ids is not None:
        ids = sorted(set(item_ids))
        if not ids:
            return []
        return [r[0] for r in store.query(_PLAN.format(where="i.id IN (SELECT unnest(?::VARCHAR[]))"), [ids])]
    return [r[0] for r in store.query(_PLAN.format(where="true" if force else _TODO))]


def _pages(store: Any, rowids: list[int]) -> Iterator[Any]:
    for s in range(0, len(rowids), SEGMENT):
        segment = rowids[s:s + SEGMENT]
        with store.connect() as con:
            # Pages with buffers of their own: a page sliced from one segment table pickles the whole segment
            # (pyarrow sends a slice's parent buffers), ten times the data to every worker.
            params = {"first": segment[0], "last": segment[-1]}
            if segment[-1] - segment[0] + 1 == len(segment):  # ascending and distinct: the range holds just these
                sql = _ROWS_RANGE
            else:
                sql, params["rows"] = _ROWS_LISTED, segment
            pages = list(con.sql(sql, params=params).to_arrow_reader(PAGE))
        yield from map(_text_once, pages)


class _Writer:
    """Score rows go in a segment at a time: one insert and commit per segment, not per page, because each
    commit writes the WAL and may checkpoint — per page, that was most of the time."""

    def __init__(self, store: Any, summary: dict, replace: bool) -> None:
        self.store, self.summary, self.replace = store, summary, replace
        self.tables: list = []
        self.items = 0

    def add(self, table: Any, n_items: int) -> None:
        self.tables.append(table)
        self.items += n_items
        if self.items >= SEGMENT:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        tables, self.tables, self.items = [t for t in self.tables if t.num_rows], [], 0
        if not tables:
            return
        table = pa.concat_tables(tables)
        with self.store.transaction() as con:
            if not self.replace:
                table = _unscored(con, table)
            con.register("new_scores", table)
            try:
                if self.replace:
                    con.execute("DELETE FROM scores WHERE (item_id, revision) IN "
                                "(SELECT DISTINCT item_id, revision FROM new_scores)")
                con.execute(f"INSERT INTO scores ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} FROM new_scores")
                n, hard, missing = con.execute(
                    "SELECT count(*) FILTER (scorer = 'overall'), count(*) FILTER (scorer = 'overall' AND hard_fail), "
                    "count(*) FILTER (scorer = 'numeric_fidelity' AND starts_with(evidence, '{\"error\"')) "
                    "FROM new_scores").fetchall()[0]
            finally:
                con.unregister("new_scores")
        self.summary["scored"] += n
        self.summary["hard_fail"] += hard
        self.summary["missing_source"] += missing


def _unscored(con: Any, table: Any) -> Any:
    """The score rows of `table` whose item revision has none in the store yet. The plan found none, but the store
    is let go between segments, and another process may have scored one since (a reviewer's edit re-scores its new
    revision; a second `curate` runs): with no key on `scores`, inserting those rows again would double them."""
    import pyarrow as pa

    con.register("new_scores", table)
    try:
        taken = con.execute(_SCORED).fetchall()
    finally:
        con.unregister("new_scores")
    if not taken:
        return table
    taken = set(taken)
    return table.filter(pa.array([(i, r) not in taken for i, r in zip(table["item_id"].to_pylist(),
                                                                         table["revision"].to_pylist())]))
