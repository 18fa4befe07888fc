"""Score items: every configured scorer on each item's current revision, plus the weighted "overall" score.

Items are read from the store a page at a time and scored in worker processes when there are many
(the scorers are regex-heavy Python; figure extraction from a chunk is cached per process). Score rows
are derived data: re-scoring an item's revision replaces that revision's rows, never the item.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, Iterable

import numpy as np

from stillroom.curate.scorers import SCORERS, ItemView, Score, Scorer
from stillroom.errors import UsageError

PAGE = 5_000
PARALLEL_FROM = 10_000  # below this, starting worker processes costs more than it saves

_ROWS = """
WITH cur AS (SELECT item_id, max(revision) AS revision FROM item_revisions GROUP BY item_id)
SELECT i.id, coalesce(cur.revision, 0), i.task, coalesce(r.question, i.question), coalesce(r.answer, i.answer),
       coalesce(r.messages, i.messages), i.meta, i.chunk_id, c.text
FROM page_ids p JOIN items i ON i.id = p.id
LEFT JOIN cur ON cur.item_id = i.id
LEFT JOIN item_revisions r ON r.item_id = i.id AND r.revision = cur.revision
LEFT JOIN chunks c ON c.id = i.chunk_id
ORDER BY i.id
"""
_TODO = """
WITH cur AS (SELECT item_id, max(revision) AS revision FROM item_revisions GROUP BY item_id)
SELECT i.id FROM items i LEFT JOIN cur ON cur.item_id = i.id
WHERE NOT EXISTS (SELECT 1 FROM scores s WHERE s.item_id = i.id AND s.revision = coalesce(cur.revision, 0)
                  AND s.scorer = 'overall')
ORDER BY i.id
"""


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
    total = sum(used.values())
    weighted = sum(scores[n].value * w for n, w in used.items()) / total if total else 1.0
    hard = sorted(n for n, s in scores.items() if s.hard_fail)
    evidence = {"weighted": round(weighted, 4), "hard_fails": hard, "weights": used}
    return Score(0.0 if hard else weighted, evidence, hard_fail=bool(hard))


def view_from_row(row: tuple) -> ItemView:
    item_id, revision, task, question, answer, messages, meta, chunk_id, chunk_text = row
    messages = json.loads(messages) if isinstance(messages, str) else (messages or [])
    meta = json.loads(meta) if isinstance(meta, str) else (meta or {})
    return ItemView(id=item_id, task=task, question=question or "", answer=answer or "", messages=messages, meta=meta,
                    source=chunk_text, source_missing=chunk_id is not None and chunk_text is None, revision=revision)


def score_view(item: ItemView, scorers: list[tuple[str, Scorer]], weights: dict[str, float]) -> dict[str, Score]:
    results = {}
    for name, scorer in scorers:
        s = scorer.score(item)
        if s is not None:
            results[name] = s
    results["overall"] = overall(results, weights)
    return results


_worker: dict = {}
# One encoder for every row: json.dumps with non-default options builds a new encoder per call.
_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _init_worker(settings: Any) -> None:
    _worker["scorers"] = load_scorers(settings)
    _worker["weights"] = settings.weights


def _score_rows(rows: list[tuple]) -> dict[str, list]:
    """Column lists for the scores table: cheap to pickle back, and DuckDB inserts them in one scan."""
    scorers, weights = _worker["scorers"], _worker["weights"]
    versions = {name: s.version for name, s in scorers} | {"overall": 1}
    cols: dict[str, list] = {k: [] for k in ("item_id", "revision", "scorer", "scorer_version", "value",
                                               "hard_fail", "evidence")}
    for row in rows:
        item = view_from_row(row)
        for name, s in score_view(item, scorers, weights).items():
            cols["item_id"].append(item.id)
            cols["revision"].append(item.revision)
            cols["scorer"].append(name)
            cols["scorer_version"].append(versions[name])
            cols["value"].append(s.value)
            cols["hard_fail"].append(s.hard_fail)
            cols["evidence"].append(_to_json(s.evidence))
    return cols


def score_items(store: Any, settings: Any, item_ids: Iterable[str] | None = None, *, force: bool = False) -> dict:
    """Score the current revision of `item_ids` (all not yet scored when None; all items with force=True).

    `settings` is the whole Settings or its [curate] section. Returns counts for the CLI and the run summary.
    """
    cfg = getattr(settings, "curate", settings)
    load_scorers(cfg)  # fail on bad config before touching anything
    started = time.monotonic()
    with store.session():
        if item_ids is not None:
            ids = sorted(set(item_ids))
        elif force:
            ids = [r[0] for r in store.query("SELECT id FROM items ORDER BY id")]
        else:
            ids = [r[0] for r in store.query(_TODO)]
        # A revision's rows are written in one transaction with its "overall" row, so an item the todo query
        # found has none to replace: skipping the delete saves a scan of the scores table per page.
        replace = item_ids is not None or force
        pages = (ids[i:i + PAGE] for i in range(0, len(ids), PAGE))
        summary = {"scored": 0, "hard_fail": 0, "missing_source": 0}
        workers = min(os.cpu_count() or 1, 8) if len(ids) >= PARALLEL_FROM else 1
        if workers > 1:
            with ProcessPoolExecutor(workers, mp_context=get_context("fork"), initializer=_init_worker,
                                     initargs=(cfg,)) as pool:
                inflight: deque = deque()  # bounded, so a million items never sit in memory at once
                for page in pages:
                    inflight.append(pool.submit(_score_rows, _read_page(store, page)))
                    if len(inflight) > workers:
                        _write(store, inflight.popleft().result(), summary, replace)
                while inflight:
                    _write(store, inflight.popleft().result(), summary, replace)
        else:
            _init_worker(cfg)
            for page in pages:
                _write(store, _score_rows(_read_page(store, page)), summary, replace)
    summary["seconds"] = round(time.monotonic() - started, 2)
    return summary


def _read_page(store: Any, page: list[str]) -> list[tuple]:
    with store.connect() as con:
        cur = con.cursor()  # its own registrations, and untouched by any unfinished result on `con`
        try:
            cur.register("page_ids", {"id": np.array(page, dtype=object)})
            return cur.execute(_ROWS).fetchall()
        finally:
            cur.close()


def _write(store: Any, cols: dict[str, list], summary: dict, replace: bool) -> None:
    if not cols["item_id"]:
        return
    batch = {k: np.array(v, dtype=object if k in ("item_id", "scorer", "evidence") else None) for k, v in cols.items()}
    with store.transaction() as con:
        con.register("new_scores", batch)
        try:
            if replace:
                con.execute("DELETE FROM scores WHERE (item_id, revision) IN "
                            "(SELECT DISTINCT item_id, revision FROM new_scores)")
            con.execute("INSERT INTO scores (item_id, revision, scorer, scorer_version, value, hard_fail, evidence) "
                        "SELECT item_id, revision, scorer, scorer_version, value, hard_fail, evidence::JSON "
                        "FROM new_scores")
        finally:
            con.unregister("new_scores")
    overall_rows = [i for i, s in enumerate(cols["scorer"]) if s == "overall"]
    summary["scored"] += len(overall_rows)
    summary["hard_fail"] += sum(1 for i in overall_rows if cols["hard_fail"][i])
    summary["missing_source"] += sum(1 for s, e in zip(cols["scorer"], cols["evidence"])
                                     if s == "numeric_fidelity" and e.startswith('{"error"'))
