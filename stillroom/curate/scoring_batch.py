"""A page of items scored at once: rows as `scoring` reads them in, an Arrow table of score rows out.

Each scorer takes the whole page (`score_many`), so the ones with a vectorised form run once per page; the
rubric ("overall") is computed for the page in numpy; shared evidence objects are encoded to JSON once.
"""

from __future__ import annotations

import gc
import json
from typing import Any, Iterable

from stillroom.curate.scorers import ItemView, Scorer

COLUMNS = ("item_id", "revision", "scorer", "scorer_version", "value", "hard_fail", "evidence")


def view_from_row(row: tuple, metas: dict[str, dict] | None = None) -> ItemView:
    """An item as `scoring._ROWS` reads it. `metas` memoises parsed meta texts over a page (scorers only read meta)."""
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


def _json_encoder():
    """Compact JSON, non-ASCII kept. The C encoder is made once: `json.dumps` and `JSONEncoder.encode` build a
    new one per call, which costs more than encoding a small evidence object (eight of them per item)."""
    from json import encoder

    slow = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    if encoder.c_make_encoder is None:
        return slow
    try:  # a private constructor: its positional arguments are those of CPython 3.x's json.encoder
        c = encoder.c_make_encoder(None, json.JSONEncoder().default, encoder.encode_basestring, None, ":", ",",
                                   False, False, True)
    except TypeError:
        return slow
    return lambda obj: "".join(c(obj, 0))


to_json = _json_encoder()


def score_rows(rows: Iterable[tuple], scorers: list[tuple[str, Scorer]], weights: dict[str, float]) -> Any:
    """An Arrow table of score rows (`COLUMNS`), item by item in the order given, each item's scorers in
    configured order, then "overall". The rows are built a column at a time and put in order by one `take`.

    The cyclic garbage collector is paused for the page: a page makes a few hundred thousand small objects
    (views, figures, evidence dicts), hardly any in cycles, so its collections freed next to nothing and cost a
    fifth of the page's time. It resumes as it was, and catches up at its next run."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _score_rows(rows, scorers, weights)
    finally:
        if enabled:
            gc.enable()


def _score_rows(rows: Iterable[tuple], scorers: list[tuple[str, Scorer]], weights: dict[str, float]) -> Any:
    import numpy as np
    import pyarrow as pa

    metas: dict[str, dict] = {}
    items = [view_from_row(row, metas) for row in rows]
    n, width = len(items), len(scorers) + 1
    ids, revs = pa.array([i.id for i in items], pa.string()), pa.array([i.revision for i in items], pa.int32())
    # Scorers share Score objects for common outcomes: each evidence object is encoded once. The cache holds the
    # object itself, so it stays alive (and its id is not reused by another) until the page is done.
    encoded: dict[int, tuple[Any, str]] = {}
    parts, applied, values, hard = [], np.zeros((len(scorers), n), bool), np.zeros((len(scorers), n)), []
    for j, (name, scorer) in enumerate(scorers):
        scores = scorer.score_many(items)
        if None in scores:  # a scorer that did not apply to some items (== on Score is never true for None)
            idx = [k for k, s in enumerate(scores) if s is not None]
            scores = [scores[k] for k in idx]
        else:
            idx = range(n)
        idx = np.fromiter(idx, np.int64, len(scores))
        applied[j, idx] = True
        values[j, idx] = [s.value for s in scores]
        flags = [s.hard_fail for s in scores]
        hard.append(set(idx[np.asarray(flags, bool)].tolist()) if True in flags else set())
        evidence = [s.evidence for s in scores]
        keys = list(map(id, evidence))
        for key, e in zip(keys, evidence):
            if key not in encoded:
                encoded[key] = (e, to_json(e))
        parts.append((idx * width + j, name, scorer.version, values[j, idx], flags, [encoded[k][1] for k in keys]))
    value, hard_fail, evidence = overall_many(scorers, weights, applied, values, hard)
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


def overall_many(scorers: list, weights: dict[str, float], applied: Any, values: Any,
                 hard: list[set[int]]) -> tuple[Any, list[bool], list[str]]:
    """The rubric for a page: the weighted mean over the scorers that applied to an item (plain left-to-right
    sums in configured order); any hard fail makes it 0 (the weighted value is kept in the evidence). Its evidence
    text is built from parts shared by the items with the same scorers applied and the same hard fails."""
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
            tails[a, f] = (',"hard_fails":' + to_json([names[j] for j in by_name if f >> j & 1])
                           + ',"weights":' + to_json(used) + "}")
        value.append(0.0 if f else min(1.0, max(0.0, w)))
        hard_fail.append(bool(f))
        evidence.append('{"weighted":' + repr(round(w, 4)) + tails[a, f])  # a finite float: JSON's own repr
    return value, hard_fail, evidence
