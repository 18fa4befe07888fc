"""One item as a reviewer sees it: its current revision, its source, its scores, the figures checked and the
source sentences that support the answer."""

from __future__ import annotations

import json
from typing import Any

from stillroom.curate.support import support_spans
from stillroom.errors import StillroomError

# Each query filters one table by a list of ids, so a batch of items costs about what one does (a
# scan each; DuckDB has no index lookups here), and no join drags every chunk's text along.
_IDS = "IN (SELECT unnest($ids::VARCHAR[]))"
# Items: the rows are found on the id column alone, and only those rows' texts read (half the time of a slice).
_ITEMS = f"""SELECT id, task, origin, external_id, question, answer, messages, meta, provider, model, prompt_hash,
chunk_id, unit_id FROM items WHERE rowid IN (SELECT rowid FROM items WHERE id {_IDS})"""
_REVISIONS = f"SELECT item_id, revision, question, answer, messages FROM item_revisions WHERE item_id {_IDS}"
_CHUNKS = f"""SELECT c.id, c.text, c.page_start, c.heading_path, d.file_name FROM chunks c
LEFT JOIN documents d ON d.id = c.document_id WHERE c.id {_IDS}"""
_SCORES = f"SELECT item_id, revision, scorer, value, hard_fail, evidence FROM scores WHERE item_id {_IDS}"
_HISTORY = f"""SELECT item_id, reviewer, decision, reason_code, revision, created_at FROM reviews WHERE item_id {_IDS}
ORDER BY seq"""


def build_view(store: Any, item_id: str) -> dict:
    with store.connect() as con:
        views = build_views(con, [item_id])
    if item_id not in views:
        raise StillroomError(f"no item {item_id!r} — list items with `stillroom items`")
    return views[item_id]


def build_views(con: Any, item_ids: list[str]) -> dict[str, dict]:
    """The views of several items at once (ids that are not items are left out)."""
    cur = con.execute(_ITEMS, {"ids": item_ids})
    cols = [d[0] for d in cur.description]
    views = {row[0]: dict(zip(cols, row), revision=0) for row in cur.fetchall()}
    if not views:
        return {}
    ids = list(views)
    for item_id, revision, question, answer, messages in sorted(con.execute(_REVISIONS, {"ids": ids}).fetchall()):
        view = views[item_id]  # sorted, so the latest revision is applied last
        view.update(revision=revision, messages=messages, question=view["question"] if question is None else question,
                    answer=view["answer"] if answer is None else answer)
    chunks = _by_id(con, _CHUNKS, {v["chunk_id"] for v in views.values()})
    runs = _by_id(con, f"SELECT id, run_id FROM work_units WHERE id {_IDS}", {v["unit_id"] for v in views.values()})
    scores: dict[str, list] = {}
    for item_id, revision, scorer, value, hard, evidence in sorted(
            con.execute(_SCORES, {"ids": ids}).fetchall(), key=lambda r: (r[0], r[2] != "overall", r[2])):
        if revision == views[item_id]["revision"]:
            scores.setdefault(item_id, []).append({"scorer": scorer, "value": value, "hard_fail": hard,
                                                   "evidence": json.loads(evidence) if evidence else None})
    history: dict[str, list] = {}
    for item_id, r, d, c, rv, t in con.execute(_HISTORY, {"ids": ids}).fetchall():
        history.setdefault(item_id, []).append({"reviewer": r, "decision": d, "reason_code": c, "revision": rv,
                                                "at": t})
    for item_id, view in views.items():
        text, page, heading, doc = chunks.get(view["chunk_id"], (None, None, None, None))
        run = runs.get(view.pop("unit_id"))
        view.update(item_id=item_id, chunk_text=text, page=page, heading_path=heading, document_name=doc,
                    run_id=run[0] if run else None, scores=scores.get(item_id, []), history=history.get(item_id, []),
                    source_missing=view["chunk_id"] is not None and text is None, problem=None)
        try:
            _finish(view)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
            # one item's odd data must not take the views fetched with it down, nor leave the reviewer with
            # a leased item they cannot see: it is shown as stored, with what is wrong, to reject or edit
            view.update(messages=[], meta={}, figures=[], support=[],
                        problem=f"item {item_id}: its stored data could not be read for review ({type(e).__name__}: "
                                f"{e}) — reject it, or edit the question and answer to store a clean revision")
    return views


def _finish(view: dict) -> None:
    """Parse the stored JSON and mark the figures and supporting sentences (spans checked against the texts)."""
    view["messages"] = json.loads(view["messages"]) if view["messages"] else []
    view["meta"] = json.loads(view["meta"]) if view["meta"] else {}
    if not isinstance(view["messages"], list) or not all(isinstance(m, dict) for m in view["messages"]):
        raise ValueError("messages is not a list of {role, content} objects")
    if not isinstance(view["meta"], dict):
        raise ValueError("meta is not an object")
    view["figures"] = _figures(view)
    answer, text = view["answer"] or "", view["chunk_text"] or ""
    for f in view["figures"]:
        if not (0 <= f["start"] <= f["end"] <= len(answer)) or (
                f["source_span"] is not None and not 0 <= f["source_span"][0] <= f["source_span"][1] <= len(text)):
            raise ValueError(f"figure {f['text']!r} points outside the answer or the source")
    view["support"] = support_spans(text, answer) if text and answer else []


def _by_id(con: Any, sql: str, ids: set) -> dict[str, tuple]:
    ids = sorted(i for i in ids if i)
    return {r[0]: r[1:] for r in con.execute(sql, {"ids": ids}).fetchall()} if ids else {}


def _figures(view: dict) -> list[dict]:
    """From the numeric-fidelity evidence when scored; computed on the spot otherwise (cheap, and always current)."""
    for s in view["scores"]:
        if s["scorer"] == "numeric_fidelity" and isinstance(s["evidence"], dict) and "figures" in s["evidence"]:
            if len(view["messages"]) <= 2:  # spans point into the answer only when there is one assistant turn
                return [{"text": f["text"], "start": f["span"][0], "end": f["span"][1],
                         "source_span": f.get("source_span")} for f in s["evidence"]["figures"]]
    if not view["chunk_text"] or not view["answer"]:
        return []
    from stillroom.curate.numbers import match_figures

    return [{"text": m.figure.text, "start": m.figure.start, "end": m.figure.end,
             "source_span": list(m.source_span) if m.source_span else None}
            for m in match_figures(view["answer"], view["chunk_text"])]
