"""One item as a reviewer sees it: its current revision, its source, its scores and the figures checked."""

from __future__ import annotations

import json
from typing import Any

from stillroom.errors import StillroomError

_ITEM = """
WITH cur AS (SELECT max(revision) AS revision FROM item_revisions WHERE item_id = $id)
SELECT i.id, i.task, i.origin, i.external_id, coalesce(cur.revision, 0) AS revision,
       coalesce(r.question, i.question) AS question, coalesce(r.answer, i.answer) AS answer,
       coalesce(r.messages, i.messages) AS messages, i.meta, i.provider, i.model, i.prompt_hash, i.chunk_id,
       c.text AS chunk_text, c.page_start AS page, c.heading_path, d.file_name AS document_name, w.run_id
FROM items i CROSS JOIN cur
LEFT JOIN item_revisions r ON r.item_id = i.id AND r.revision = cur.revision
LEFT JOIN chunks c ON c.id = i.chunk_id
LEFT JOIN documents d ON d.id = c.document_id
LEFT JOIN work_units w ON w.id = i.unit_id
WHERE i.id = $id
"""


def build_view(store: Any, item_id: str) -> dict:
    with store.connect() as con:
        cur = con.execute(_ITEM, {"id": item_id})
        cols = [d[0] for d in cur.description]
        row = cur.fetchone()
        if row is None:
            raise StillroomError(f"no item {item_id!r} — list items with `stillroom items`")
        view = dict(zip(cols, row))
        scores = con.execute(
            "SELECT scorer, value, hard_fail, evidence FROM scores WHERE item_id = ? AND revision = ? "
            "ORDER BY scorer = 'overall' DESC, scorer", [item_id, view["revision"]]).fetchall()
        history = con.execute(
            "SELECT reviewer, decision, reason_code, revision, created_at FROM reviews WHERE item_id = ? ORDER BY seq",
            [item_id]).fetchall()
    view["item_id"] = item_id
    view["messages"] = json.loads(view["messages"]) if view["messages"] else []
    view["meta"] = json.loads(view["meta"]) if view["meta"] else {}
    view["source_missing"] = view["chunk_id"] is not None and view["chunk_text"] is None
    view["scores"] = [{"scorer": s, "value": v, "hard_fail": h, "evidence": json.loads(e) if e else None}
                      for s, v, h, e in scores]
    view["history"] = [{"reviewer": r, "decision": d, "reason_code": c, "revision": rv, "at": t}
                       for r, d, c, rv, t in history]
    view["figures"] = _figures(view)
    return view


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
