"""What curation decided about each item, as one SQL query every flow module shares.

An item's status is derived, never stored: from its current revision's overall score, its
duplicate group and the decisions reviewers made (an undo withdraws a decision). So a new decision
or a re-score changes what `items`, the gates, the audit estimate and export see, without a rewrite.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from stillroom.errors import UsageError

STATUSES = ("approved", "auto_approved", "needs_review", "rejected", "duplicate", "unscored")

# Each item's current revision; an item never edited has no row here (its revision is coalesce(cur.revision, 0)).
CURRENT_REVISION = "SELECT item_id, max(revision) AS revision FROM item_revisions GROUP BY item_id"

# Decisions that still count: approve/reject rows no undo has withdrawn.
EFFECTIVE = """
SELECT r.* FROM reviews r
WHERE r.decision IN ('approve', 'reject')
  AND NOT EXISTS (SELECT 1 FROM reviews u WHERE u.decision = 'undo' AND u.undoes = r.id)
"""


def state_sql(review_below: float, with_figures: bool = False) -> str:
    """A query with one row per item: its current revision, score, duplicate flag, last decision and status.

    `with_figures` adds `has_figures` (the answer holds a figure, from the numeric-fidelity evidence); it
    parses JSON on every row, so only the queries that need it ask for it.
    """
    below = float(review_below)
    figures = ("coalesce(json_array_length(nf.evidence -> '$.figures'), 0) > 0" if with_figures else "NULL::BOOLEAN")
    figures_join = ("LEFT JOIN scores nf ON nf.item_id = i.id AND nf.revision = coalesce(cur.revision, 0) "
                    "AND nf.scorer = 'numeric_fidelity'" if with_figures else "")
    return f"""
WITH cur AS ({CURRENT_REVISION}),
eff AS ({EFFECTIVE}),
last AS (SELECT item_id, arg_max(decision, seq) AS decision, arg_max(reason_code, seq) AS reason_code,
                count(*) AS n_decisions FROM eff GROUP BY item_id),
dup AS (SELECT item_id, min(kind) AS dup_kind, min(representative_id) AS representative_id FROM duplicates
        WHERE representative_id <> item_id GROUP BY item_id),
base AS (
  SELECT i.id, i.external_id, i.task, i.origin, i.chunk_id, i.provider, i.model, i.prompt_hash,
         coalesce(cur.revision, 0) AS revision,
         coalesce(rv.question, i.question) AS question, coalesce(rv.answer, i.answer) AS answer,
         coalesce(rv.messages, i.messages) AS messages, i.meta,
         coalesce(c.document_id, i.id) AS document_id, d.file_name AS document,
         ov.value AS overall, coalesce(ov.hard_fail, false) AS hard_fail,
         {figures} AS has_figures,
         dup.dup_kind, dup.representative_id,
         last.decision, last.reason_code, coalesce(last.n_decisions, 0) AS n_decisions
  FROM items i
  LEFT JOIN cur ON cur.item_id = i.id
  LEFT JOIN item_revisions rv ON rv.item_id = i.id AND rv.revision = cur.revision
  LEFT JOIN chunks c ON c.id = i.chunk_id
  LEFT JOIN documents d ON d.id = c.document_id
  LEFT JOIN scores ov ON ov.item_id = i.id AND ov.revision = coalesce(cur.revision, 0) AND ov.scorer = 'overall'
  {figures_join}
  LEFT JOIN dup ON dup.item_id = i.id
  LEFT JOIN last ON last.item_id = i.id
)
SELECT *,
  CASE WHEN decision = 'reject' THEN 'rejected'
       WHEN dup_kind IS NOT NULL THEN 'duplicate'
       WHEN decision = 'approve' THEN 'approved'
       WHEN overall IS NULL THEN 'unscored'
       WHEN hard_fail OR overall < {below} THEN 'needs_review'
       ELSE 'auto_approved' END AS status
FROM base
"""


def utcnow() -> datetime:
    """Naive UTC: what every timestamp this stage writes holds, whatever the machine's time zone."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _filtered(review_below: float, scorers: list[str], where: str | None, statuses: list[str] | None) -> str:
    """The state query with one column per scorer (so `--where "numeric_fidelity < 1"` works) and the filters."""
    bad = [s for s in statuses or [] if s not in STATUSES]
    if bad:
        raise UsageError(f"unknown status {', '.join(bad)}; use one of {', '.join(STATUSES)}")
    if where and ";" in where:
        raise UsageError("--where takes one SQL condition, without ';'")
    cols = ", ".join(f"(SELECT value FROM scores s WHERE s.item_id = st.id AND s.revision = st.revision "
                     f"AND s.scorer = '{n}') AS {n}" for n in scorers if n.isidentifier())
    conds = [f"({where})"] if where else []
    if statuses:
        conds.append("status IN (" + ", ".join(f"'{s}'" for s in statuses) + ")")
    state = state_sql(review_below, with_figures="has_figures" in (where or ""))
    return (f"SELECT * FROM (SELECT st.*{', ' + cols if cols else ''} FROM ({state}) st) "
            f"WHERE {' AND '.join(conds) or 'true'}")


def matching_ids(store: Any, settings: Any, where: str | None, statuses: list[str] | None = None) -> list[str]:
    cfg = getattr(settings, "curate", settings)
    sql = _filtered(cfg.review_below, cfg.scorers, where, statuses)
    return [r[0] for r in _run(store, f"SELECT id FROM ({sql}) ORDER BY id")]


def list_items(store: Any, settings: Any, where: str | None = None, statuses: list[str] | None = None,
               limit: int | None = 100) -> list[dict]:
    """Items as `stillroom items --json` shows them: status, question, answer, overall, every scorer's value and evidence."""
    cfg = getattr(settings, "curate", settings)
    sql = _filtered(cfg.review_below, cfg.scorers, where, statuses)
    lim = f" LIMIT {int(limit)}" if limit else ""
    rows = _run(store, f"SELECT id, external_id, task, origin, status, revision, question, answer, overall, hard_fail, "
                       f"document, decision, reason_code FROM ({sql}) ORDER BY id{lim}")
    keys = ("id", "external_id", "task", "origin", "status", "revision", "question", "answer", "overall", "hard_fail",
            "document", "decision", "reason_code")
    items = [dict(zip(keys, r)) for r in rows]
    if items:
        # a list parameter, not a registered table: registering right after a connection opens trips DuckDB's
        # "unfinished result" check
        scores = store.query("SELECT s.item_id, s.scorer, s.value, s.hard_fail, s.evidence FROM scores s "
                             "JOIN (SELECT unnest(?::VARCHAR[]) AS id, unnest(?::INTEGER[]) AS revision) l "
                             "ON l.id = s.item_id AND l.revision = s.revision ORDER BY s.item_id, s.scorer",
                             [[i["id"] for i in items], [i["revision"] for i in items]])
        by_item: dict[str, dict] = {}
        for item_id, scorer, value, hard, evidence in scores:
            by_item.setdefault(item_id, {})[scorer] = {"value": value, "hard_fail": hard,
                                                       "evidence": json.loads(evidence) if evidence else None}
        for i in items:
            i["scores"] = by_item.get(i["id"], {})
    return items


def _run(store: Any, sql: str) -> list[tuple]:
    import duckdb

    try:
        return store.query(sql)
    except (duckdb.BinderException, duckdb.ParserException, duckdb.ConversionException) as e:
        raise UsageError(f"--where: {str(e).splitlines()[0]} — columns: id, external_id, task, origin, status, "
                         "overall, hard_fail, question, answer, document, decision, has_figures, revision, and one "
                         "per scorer (e.g. numeric_fidelity)") from None
