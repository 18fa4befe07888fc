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

import json
import os
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, Iterable, Iterator

from stillroom.curate.scorers import SCORERS, ItemView, Score, Scorer
from stillroom.errors import UsageError

PAGE = 5_000
SEGMENT = 50_000  # items per read: one short query (and lock hold) each, a bounded amount in memory
PARALLEL_FROM = 10_000  # below this, starting worker processes costs more than it saves

_CUR = "SELECT item_id, max(revision) AS revision FROM item_revisions GROUP BY item_id"
_PLAN = f"""
SELECT i.rowid FROM items i LEFT JOIN ({_CUR}) cur ON cur.item_id = i.id
WHERE {{where}}
ORDER BY i.rowid
"""
_TODO = ("NOT EXISTS (SELECT 1 FROM scores s WHERE s.item_id = i.id AND s.revision = coalesce(cur.revision, 0) "
         "AND s.scorer = 'overall')")
_ROWS = f"""
SELECT i.id, coalesce(cur.revision, 0) AS revision, i.task, coalesce(r.question, i.question) AS question,
       coalesce(r.answer, i.answer) AS answer, CAST(coalesce(r.messages, i.messages) AS VARCHAR) AS messages,
       CAST(i.meta AS VARCHAR) AS meta, i.chunk_id, c.text
FROM items i
LEFT JOIN ({_CUR}) cur ON cur.item_id = i.id
LEFT JOIN item_revisions r ON r.item_id = i.id AND r.revision = cur.revision
LEFT JOIN chunks c ON c.id = i.chunk_id
WHERE i.rowid BETWEEN ? AND ? AND i.rowid IN (SELECT unnest(?::BIGINT[]))
ORDER BY i.rowid
"""
_COLUMNS = ("item_id", "revision", "scorer", "scorer_version", "value", "hard_fail", "evidence")


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


def overall(scores: dict[str, Score], weights: dict[str, float]) -> Score:
    """The rubric: weighted mean over the scorers that applied; any hard fail makes it 0 (the weighted value is kept)."""
    used = {n: weights.get(n, 0.0) for n in scores if weights.get(n, 0.0) > 0}
    total = num = 0.0
    for n, w in used.items():  # plain left-to-right sums (not `sum`, compensated from Python 3.12): `_overall_many`
        total += w             # adds in the same order and must get the same floats
        num += scores[n].value * w
    weighted = num / total if total else 1.0
    hard = sorted(n for n, s in scores.items() if s.hard_fail)
    evidence = {"weighted": round(weighted, 4), "hard_fails": hard, "weights": used}
    return Score(0.0 if hard else weighted, evidence, hard_fail=bool(hard))


def view_from_row(row: tuple, metas: dict[str, dict] | None = None) -> ItemView:
    """An item as `_ROWS` reads it. `metas` memoises parsed meta texts over a page (scorers only read meta)."""
    item_id, revision, task, question, answer, messages, meta, chunk_id, chunk_text = row
    messages = _messages(messages, question, answer) if isinstance(messages, str) else (messages or [])
    if isinstance(meta, str):
        if metas is None:
            meta = json.loads(meta)
        else:
            if meta not in metas:
                metas[meta] = json.loads(meta)
            meta = metas[meta]
    return ItemView(id=item_id, task=task, question=question or "", answer=answer or "", messages=messages,
                    meta=meta or {}, source=chunk_text, source_missing=chunk_id is not None and chunk_text is None,
                    revision=revision)


_quote = json.encoder.encode_basestring  # as json.dumps(..., ensure_ascii=False) writes a string


def _messages(text: str, question: Any, answer: Any) -> list[dict]:
    """Most items are one question and its answer, stored as json.dumps wrote them: recognising that text
    costs a fraction of parsing it (and gives the same list)."""
    if isinstance(question, str) and isinstance(answer, str) and text == (
            '[{"role": "user", "content": ' + _quote(question) + '}, {"role": "assistant", "content": '
            + _quote(answer) + "}]"):
        return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return json.loads(text)


def score_view(item: ItemView, scorers: list[tuple[str, Scorer]], weights: dict[str, float]) -> dict[str, Score]:
    results = {}
    for name, scorer in scorers:
        s = scorer.score(item)
        if s is not None:
            results[name] = s
    results["overall"] = overall(results, weights)
    return results


def _json_encoder():
    """Compact JSON, non-ASCII kept. The C encoder is made once: `json.dumps` and `JSONEncoder.encode` build a
    new one per call, which costs more than encoding a small evidence object (eight of them per item)."""
    from json import encoder

    if encoder.c_make_encoder is None:
        return json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    c = encoder.c_make_encoder(None, json.JSONEncoder().default, encoder.encode_basestring, None, ":", ",",
                               False, False, True)
    return lambda obj: "".join(c(obj, 0))


_worker: dict = {}
_to_json = _json_encoder()


def _init_worker(settings: Any) -> None:
    _worker["scorers"] = load_scorers(settings)
    _worker["weights"] = settings.weights


def _score_rows(rows: Iterable[tuple]) -> Any:
    """An Arrow table of score rows (`_COLUMNS`), item by item in the order given, each item's scorers in
    configured order, then "overall". Each scorer takes the whole page at once (`score_many`), so the ones with
    a vectorised form run once per page; the rows are built a column at a time and put in order by one `take`."""
    import numpy as np
    import pyarrow as pa

    scorers, weights = _worker["scorers"], _worker["weights"]
    metas: dict[str, dict] = {}
    items = [view_from_row(row, metas) for row in rows]
    n, width = len(items), len(scorers) + 1
    ids, revs = pa.array([i.id for i in items], pa.string()), pa.array([i.revision for i in items], pa.int32())
    encoded: dict[int, str] = {}  # scorers share Score objects for common outcomes: encode each one once
    alive = []  # ...by id, so every Score is kept until the page is done: no id is reused meanwhile
    parts, applied, values, hard = [], np.zeros((len(scorers), n), bool), np.zeros((len(scorers), n)), []
    for j, (name, scorer) in enumerate(scorers):
        at = [(k, s) for k, s in enumerate(scorer.score_many(items)) if s is not None]
        alive.append(at)
        idx = np.fromiter((k for k, _ in at), np.int64, len(at))
        applied[j, idx] = True
        values[j, idx] = [s.value for _, s in at]
        hard.append({k for k, s in at if s.hard_fail})
        evidence = []
        for _, s in at:
            key = id(s.evidence)
            if key not in encoded:
                encoded[key] = _to_json(s.evidence)
            evidence.append(encoded[key])
        parts.append((idx * width + j, name, scorer.version, values[j, idx], [k in hard[j] for k in idx.tolist()],
                      evidence))
    value, hard_fail, evidence = _overall_many(scorers, weights, applied, values, hard)
    parts.append((np.arange(n) * width + width - 1, "overall", 1, value, hard_fail, evidence))
    order = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    item_of = order // width
    table = pa.table({
        "item_id": ids.take(item_of), "revision": revs.take(item_of),
        "scorer": pa.array(np.concatenate([np.full(len(p[0]), p[1], object) for p in parts]), pa.string()),
        "scorer_version": pa.array(np.concatenate([np.full(len(p[0]), p[2], np.int32) for p in parts])),
        "value": pa.array(np.concatenate([np.asarray(p[3], np.float64) for p in parts])),
        "hard_fail": pa.array(np.concatenate([np.asarray(p[4], bool) for p in parts])),
        "evidence": pa.array([e for p in parts for e in p[5]], pa.string()),
    })
    return table.take(np.argsort(order, kind="stable"))


def _overall_many(scorers: list, weights: dict[str, float], applied: Any, values: Any,
                  hard: list[set[int]]) -> tuple[Any, list[bool], list[str]]:
    """`overall` for a page at once: the same sums in the same order (so the same floats), and its evidence
    text built from parts shared by the items with the same scorers applied and the same hard fails."""
    import numpy as np

    names = [name for name, _ in scorers]
    n = applied.shape[1]
    num, total = np.zeros(n), np.zeros(n)
    for j, name in enumerate(names):
        w = weights.get(name, 0.0)
        if w > 0:  # adding 0.0 where a scorer did not apply leaves a sum unchanged, as skipping it does
            num += np.where(applied[j], values[j] * w, 0.0)
            total += np.where(applied[j], w, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        weighted = np.where(total > 0, num / total, 1.0)
    bits = (applied.astype(np.int64) << np.arange(len(names))[:, None]).sum(axis=0) if names else np.zeros(n, int)
    failing = np.zeros(n, np.int64)
    for j, ks in enumerate(hard):
        failing[list(ks)] |= 1 << j
    by_name = sorted(range(len(names)), key=names.__getitem__)
    tails: dict[tuple[int, int], str] = {}
    value, hard_fail, evidence = [], [], []
    for w, a, f in zip(weighted.tolist(), bits.tolist(), failing.tolist()):
        if (a, f) not in tails:
            used = {nm: weights.get(nm, 0.0) for j, nm in enumerate(names) if a >> j & 1 and weights.get(nm, 0.0) > 0}
            tails[a, f] = (',"hard_fails":' + _to_json([names[j] for j in by_name if f >> j & 1])
                           + ',"weights":' + _to_json(used) + "}")
        value.append(0.0 if f else min(1.0, max(0.0, w)))
        hard_fail.append(bool(f))
        evidence.append('{"weighted":' + _to_json(round(w, 4)) + tails[a, f])
    return value, hard_fail, evidence


def _score_batch(batch: Any) -> Any:
    """A worker's page: Arrow rows in (as `_ROWS` selects them), an Arrow table of score rows out."""
    return _score_rows(zip(*(c.to_pylist() for c in batch.columns)))


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
        # insert with its "overall" row): skipping the delete saves a scan of the scores table per page.
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
            table = con.sql(_ROWS, params=[segment[0], segment[-1], segment]).to_arrow_table()
        yield from table.to_batches(PAGE)


class _Writer:
    """Score rows go in a segment at a time: one insert and commit per segment, not per page, because each
    commit writes the WAL and may checkpoint (with the scores key) — per page, that was most of the time."""

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
            con.register("new_scores", table)
            try:
                if self.replace:
                    con.execute("DELETE FROM scores WHERE (item_id, revision) IN "
                                "(SELECT DISTINCT item_id, revision FROM new_scores)")
                con.execute(f"INSERT INTO scores ({', '.join(_COLUMNS)}) SELECT {', '.join(_COLUMNS)} FROM new_scores")
                n, hard, missing = con.execute(
                    "SELECT count(*) FILTER (scorer = 'overall'), count(*) FILTER (scorer = 'overall' AND hard_fail), "
                    "count(*) FILTER (scorer = 'numeric_fidelity' AND starts_with(evidence, '{\"error\"')) "
                    "FROM new_scores").fetchall()[0]
            finally:
                con.unregister("new_scores")
        self.summary["scored"] += n
        self.summary["hard_fail"] += hard
        self.summary["missing_source"] += missing
