"""The review queue, and what the reviewed audit sample says about the items nobody reviewed.

Every item that failed a hard check or scored below `review_below` is queued. Of the rest (the
items that would be approved without a human), a stratified random sample — by task × document ×
score band — is queued for audit. The audit's reject rate, with a Wilson 95% interval, estimates the
defect rate of every approved-but-unreviewed item: the figure that says when the data is good enough.
"""

from __future__ import annotations

import math
from typing import Any

from stillroom.curate.state import EFFECTIVE, state_sql, utcnow

Z95 = 1.959963984540054

_QUEUE = """
WITH st AS ({state}),
todo AS (SELECT * FROM st WHERE status = 'needs_review'),
-- the audit is drawn from every item the machine passed, decided or not, so re-running curate draws
-- the same sample (plus its share of new items) instead of a fresh one from what is left
audit_pool AS (
  SELECT id, n_decisions, task || ' × ' || document_id || ' × band ' || {band}::VARCHAR AS stratum,
         hash(id || '/' || $seed) AS h
  FROM st WHERE dup_kind IS NULL AND overall IS NOT NULL AND NOT hard_fail AND overall >= $below),
ranked AS (
  SELECT *, row_number() OVER (PARTITION BY stratum ORDER BY h, id) AS rnk,
         count(*) OVER (PARTITION BY stratum) AS n,
         -- stochastic rounding: a stratum of 3 at 15% gets one item 45% of the time, so small strata
         -- are represented in proportion instead of each costing a whole review
         (hash(stratum || '/' || $seed) % 1000000) / 1e6 AS u
  FROM audit_pool)
SELECT id AS item_id, 2.0 + (1.0 - coalesce(overall, 0)) AS priority, 'hard_fail' AS reason,
       CAST(NULL AS VARCHAR) AS stratum FROM todo
  WHERE status = 'needs_review' AND hard_fail
UNION ALL
SELECT id, 1.0 + ($below - overall), 'low_score', NULL FROM todo
  WHERE status = 'needs_review' AND NOT hard_fail
UNION ALL
SELECT id, (h % 1000000) / 1e6, 'audit', stratum FROM ranked
  WHERE n_decisions = 0 AND rnk <= floor(n * $fraction) + CASE WHEN u < n * $fraction - floor(n * $fraction) THEN 1 ELSE 0 END
"""


def build_queue(store: Any, settings: Any) -> dict:
    """Queue what needs a human and draw the audit sample. Items already queued or decided keep their place."""
    cfg = getattr(settings, "curate", settings)
    band = " + ".join(f"(overall >= {float(c)})::INTEGER" for c in sorted(cfg.score_bands)) or "0"
    sql = _QUEUE.format(state=state_sql(cfg.review_below), band=f"({band})")
    params = {"seed": str(cfg.audit_seed), "below": cfg.review_below, "fraction": cfg.audit_fraction}
    with store.transaction() as con:
        con.execute(f"CREATE OR REPLACE TEMP TABLE new_queue AS SELECT * FROM ({sql}) "
                    "WHERE item_id NOT IN (SELECT item_id FROM review_queue)", params)
        con.execute("INSERT INTO review_queue (item_id, priority, reason, stratum, created_at) "
                    "SELECT *, ? FROM new_queue", [utcnow()])
        added = dict(con.execute("SELECT reason, count(*) FROM new_queue GROUP BY reason").fetchall())
        con.execute("DROP TABLE new_queue")
        queued = dict(con.execute(f"""WITH eff AS ({EFFECTIVE})
            SELECT reason, count(*) FROM review_queue q
            WHERE NOT EXISTS (SELECT 1 FROM eff WHERE eff.item_id = q.item_id) GROUP BY reason""").fetchall())
    return {"added": {k: added.get(k, 0) for k in ("hard_fail", "low_score", "audit")},
            "waiting": {k: queued.get(k, 0) for k in ("hard_fail", "low_score", "audit")}}


def wilson(defects: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion: sound at 0 defects and small samples, where p ± z·se is not."""
    if n == 0:
        return 0.0, 1.0
    p = defects / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


_AUDITED = f"""
WITH eff AS ({EFFECTIVE}),
last AS (SELECT item_id, arg_max(decision, seq) AS decision FROM eff GROUP BY item_id),
edited AS (SELECT DISTINCT item_id FROM reviews WHERE decision = 'edit')
SELECT count(*), count(*) FILTER (WHERE last.decision = 'reject' OR edited.item_id IS NOT NULL)
FROM review_queue q JOIN last ON last.item_id = q.item_id LEFT JOIN edited ON edited.item_id = q.item_id
WHERE q.reason = 'audit'
"""


def error_rate_estimate(store: Any, settings: Any = None) -> dict:
    """Defect rate of approved-but-unreviewed items, from the audited sample (rejected or edited = defective)."""
    with store.connect() as con:
        audited, defects = con.execute(_AUDITED).fetchone()
        unreviewed = None
        if settings is not None:
            cfg = getattr(settings, "curate", settings)
            unreviewed = con.execute(f"SELECT count(*) FROM ({state_sql(cfg.review_below)}) "
                                     "WHERE status = 'auto_approved'").fetchone()[0]
    low, high = wilson(defects, audited)
    text = (f"≤ {high:.1%} defective at 95% confidence, from {audited} audited items" if audited
            else "no audited items yet — review the audit sample (stillroom review) to estimate the error rate")
    return {"audited": audited, "defects": defects, "estimate": round(defects / audited, 4) if audited else None,
            "low": round(low, 4), "high": round(high, 4), "confidence": 0.95, "method": "wilson",
            "unreviewed_approved": unreviewed, "text": text}
