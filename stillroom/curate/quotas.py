"""Selection: the approved items that make the exported set, meeting the target mix where the pool allows.

The pool is every approved or auto-approved item. Caps and shares are met by dropping the
lowest-ranked items (a human approval ranks above any score); a target the pool cannot meet (no
numeric items at all, too few documents for the cap) is reported as a shortfall, never hidden.
Selection is recomputed whenever it is needed, so a decision made after `curate` counts at export.
"""

from __future__ import annotations

import math
from typing import Any

from stillroom.curate.state import state_sql

# Best first: a human approval ranks above any score. Sorted only where a quota drops items, not for every pool.
BEST_FIRST = "status = 'approved' DESC, score DESC, id"

_POOL = """
CREATE OR REPLACE TEMP TABLE selection AS
SELECT id, revision, document_id, document, task, prompt_hash, has_figures, status,
       coalesce(overall, 0) AS score, CAST(NULL AS VARCHAR) AS dropped
FROM ({state}) WHERE status IN ('approved', 'auto_approved')
"""


def select(con: Any, settings: Any) -> dict:
    """Fill the temp table `selection` (id, revision, document_id, task, …, dropped) and report the mix and shortfalls."""
    cfg = getattr(settings, "curate", settings)
    q = cfg.quotas
    con.execute(_POOL.format(state=state_sql(cfg.review_below, with_figures=q.numeric_min_share > 0)))
    shortfalls: list[str] = []
    _cap_documents(con, q.max_document_share, shortfalls)
    for task, share in sorted(q.task_max_share.items()):
        _at_most(con, f"task = '{_lit(task)}'", share, f"task_max:{task}")
    targets = [(f"task = '{_lit(t)}'", s, f"task {t}") for t, s in sorted(q.task_min_share.items())]
    if q.numeric_min_share > 0:
        targets.append(("has_figures", q.numeric_min_share, "items with figures"))
    for predicate, share, label in targets:
        _at_least(con, predicate, share, label, shortfalls)
    return _report(con, q, targets, shortfalls)


def _live(con: Any, predicate: str = "true") -> int:
    return con.execute(f"SELECT count(*) FROM selection WHERE dropped IS NULL AND ({predicate})").fetchone()[0]


def _drop_worst(con: Any, predicate: str, n: int, why: str) -> None:
    if n > 0:
        con.execute(f"""UPDATE selection SET dropped = ? WHERE id IN (
            SELECT id FROM selection WHERE dropped IS NULL AND ({predicate})
            ORDER BY row_number() OVER (ORDER BY {BEST_FIRST}) DESC LIMIT {int(n)})""", [why])


def _cap_documents(con: Any, share: float, shortfalls: list[str]) -> None:
    """The largest per-document cap k with k ≤ share · (items kept under cap k); found by bisection on k."""
    if share >= 1:
        return
    counts = [r[0] for r in con.execute("SELECT count(*) FROM selection GROUP BY document_id").fetchall()]
    if not counts:
        return

    def kept(k: int) -> int:
        return sum(min(c, k) for c in counts)

    if 1 > share * kept(1):
        shortfalls.append(f"max_document_share {share:.0%} needs at least {math.ceil(1 / share)} source documents; "
                          f"the pool has {len(counts)} — add documents or raise the share")
        return
    lo, hi = 1, max(counts)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if mid <= share * kept(mid) else (lo, mid - 1)
    con.execute(f"""UPDATE selection SET dropped = 'document_cap' WHERE id IN (
        SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY document_id ORDER BY {BEST_FIRST}) AS r
                        FROM selection) WHERE r > ?)""", [lo])


def _at_most(con: Any, predicate: str, share: float, why: str) -> None:
    n, total = _live(con, predicate), _live(con)
    if share >= 1 or n <= share * total:
        return
    keep = math.floor(share * (total - n) / (1 - share)) if share < 1 else n
    _drop_worst(con, predicate, n - keep, why)


def _at_least(con: Any, predicate: str, share: float, label: str, shortfalls: list[str]) -> None:
    n, total = _live(con, predicate), _live(con)
    if total == 0 or n >= share * total:
        return
    if n == 0:
        shortfalls.append(f"{label}: target ≥ {share:.0%} but the pool has none")
        return
    others_allowed = math.floor(n * (1 - share) / share)
    _drop_worst(con, f"NOT ({predicate})", (total - n) - others_allowed, f"min_share:{label}")


def _report(con: Any, q: Any, targets: list, shortfalls: list[str]) -> dict:
    total = _live(con)
    for predicate, share, label in targets:  # a later target can undo an earlier one; say so
        n = _live(con, predicate)
        if total and n < share * total and not any(s.startswith(label) for s in shortfalls):
            shortfalls.append(f"{label}: {n / total:.1%} after selection, target ≥ {share:.0%}")
    dropped = dict(con.execute("SELECT dropped, count(*) FROM selection WHERE dropped IS NOT NULL GROUP BY 1 "
                                "ORDER BY 1").fetchall())
    by_task = dict(con.execute("SELECT task, count(*) FROM selection WHERE dropped IS NULL GROUP BY 1 ORDER BY 1")
                   .fetchall())
    top_doc = con.execute("SELECT count(*) FROM selection WHERE dropped IS NULL GROUP BY document_id "
                          "ORDER BY 1 DESC LIMIT 1").fetchone()
    return {"pool": con.execute("SELECT count(*) FROM selection").fetchone()[0], "selected": total,
            "dropped": dropped, "by_task": by_task, "with_figures": _live(con, "has_figures") if q.numeric_min_share > 0 else None,
            "largest_document_share": round(top_doc[0] / total, 4) if total else 0.0,
            "max_document_share": q.max_document_share, "shortfalls": shortfalls}


def _lit(s: str) -> str:
    return s.replace("'", "''")
