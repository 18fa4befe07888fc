"""Read-only figures for the dashboard. Nothing here writes; decisions are the curate API's business."""

from __future__ import annotations

from stillroom.curate.state import EFFECTIVE
from stillroom.review_ui.render import bars, histogram

# Decisions that still stand (an undo withdraws one), as curate defines them.
_EFF = f"WITH eff AS ({EFFECTIVE})"


def progress(store) -> dict:
    with store.connect() as con:
        total = con.execute("SELECT count(*) FROM items").fetchone()[0]
        queued = con.execute(f"{_EFF} SELECT count(*) FROM review_queue q "
                             "WHERE NOT EXISTS (SELECT 1 FROM eff WHERE eff.item_id = q.item_id)").fetchone()[0]
        reviewed = con.execute(f"{_EFF} SELECT count(DISTINCT item_id) FROM eff").fetchone()[0]
    return {"total": total, "queued": queued, "reviewed": reviewed}


def per_reviewer(store) -> list[dict]:
    """Decisions per reviewer and their median seconds between consecutive decisions (speed)."""
    return store.query_dicts(f"""
        {_EFF}, d AS (
            SELECT reviewer, created_at,
                   epoch(created_at - lag(created_at) OVER (PARTITION BY reviewer ORDER BY created_at)) AS gap
            FROM eff)
        SELECT reviewer, count(*) AS decisions,
               round(median(gap) FILTER (WHERE gap < 600), 1) AS median_s
        FROM d GROUP BY reviewer ORDER BY decisions DESC""")


def agreement(store) -> dict:
    """Items decided by two or more reviewers, and the share where all agreed (double review)."""
    row = store.query(f"""
        {_EFF}, last AS (
            SELECT item_id, reviewer, arg_max(decision, seq) AS decision FROM eff GROUP BY item_id, reviewer)
        SELECT count(*), count(*) FILTER (WHERE n_kinds = 1) FROM (
            SELECT item_id, count(DISTINCT decision) AS n_kinds FROM last GROUP BY item_id HAVING count(*) > 1)""")
    n, agreed = row[0]
    return {"n_items": n, "agreed": agreed, "rate": (agreed / n) if n else None}


def charts(store) -> dict:
    overall = [r[0] for r in store.query("SELECT value FROM scores WHERE scorer = 'overall'")]
    tasks = store.query("SELECT task, count(*) FROM items GROUP BY task ORDER BY 2 DESC LIMIT 12")
    return {"scores": bars(histogram(overall)), "tasks": bars([(t, float(n)) for t, n in tasks])}


def recent_runs(store, limit: int = 10) -> list[dict]:
    return store.query_dicts(
        "SELECT id, stage, status, started_at, finished_at, summary FROM runs ORDER BY started_at DESC LIMIT ?", [limit])


def key_health(store) -> list[dict]:
    """Aliases and states only: key_state never holds a key."""
    return store.query_dicts(
        "SELECT provider, alias, state, cooling_until, requests, rate_limited, last_error FROM key_state "
        "ORDER BY provider, alias")


def run_problems(store, limit: int = 20) -> list[dict]:
    """The latest warnings and errors runs reported (per file, unit or item)."""
    return store.query_dicts(
        "SELECT run_id, created_at, level, subject, message FROM run_events WHERE level IN ('warning', 'error') "
        "ORDER BY created_at DESC LIMIT ?", [limit])
