"""Read-only figures for the dashboard. Nothing here writes; decisions are the curate API's business."""

from __future__ import annotations

from stillroom.curate.state import EFFECTIVE
from stillroom.review_ui.render import bars, histogram

# Decisions that still stand (an undo withdraws one), as curate defines them.
_EFF = f"WITH eff AS ({EFFECTIVE})"


def progress(store, double_share: float = 0.0) -> dict:
    """Reviewed / waiting / total, and the double-review items still waiting for their second reviewer."""
    from stillroom.curate.review_order import drawn, threshold

    # an item in the queue one reviewer decided still waits when it was drawn for double review
    second = f"q.item_id IS NOT NULL AND d.reviewers = 1 AND {drawn('q.item_id')}" if double_share > 0 else "false"
    with store.connect() as con:
        total, queued, reviewed, waiting = con.execute(f"""{_EFF},
            d AS (SELECT item_id, count(DISTINCT reviewer) AS reviewers FROM eff GROUP BY item_id)
            SELECT (SELECT count(*) FROM items),
                   count(*) FILTER (WHERE q.item_id IS NOT NULL AND d.item_id IS NULL),
                   count(*) FILTER (WHERE d.item_id IS NOT NULL),
                   count(*) FILTER (WHERE {second})
            FROM d FULL OUTER JOIN review_queue q ON q.item_id = d.item_id""",
            {"threshold": threshold(double_share)} if double_share > 0 else {}).fetchone()
    return {"total": total, "queued": queued, "reviewed": reviewed, "second_review": waiting}


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
    """Items two reviewers decided: how often the second agreed with the first, and Cohen's kappa.

    Each reviewer's standing decision counts (their last, if they changed their mind); an item decided
    by more than two reviewers contributes its first two. Kappa treats "first" and "second reviewer"
    as the two raters, which is the usual reading when the pairs of people vary from item to item.
    """
    rows = store.query(f"""
        {_EFF}, per AS (
            SELECT item_id, reviewer, arg_max(decision, seq) AS decision, min(seq) AS first FROM eff
            GROUP BY item_id, reviewer),
        ranked AS (SELECT *, row_number() OVER (PARTITION BY item_id ORDER BY first) AS k FROM per)
        SELECT a.decision, b.decision, count(*) FROM ranked a JOIN ranked b ON a.item_id = b.item_id
        WHERE a.k = 1 AND b.k = 2 GROUP BY ALL""")
    return agreement_of({(a, b): n for a, b, n in rows})


def agreement_of(pairs: dict[tuple[str, str], int]) -> dict:
    """Percent agreement and Cohen's kappa from counts of (first decision, second decision)."""
    n = sum(pairs.values())
    if not n:
        return {"n_items": 0, "agreed": 0, "rate": None, "kappa": None}
    agreed = sum(c for (a, b), c in pairs.items() if a == b)
    labels = {x for pair in pairs for x in pair}
    first = {x: sum(c for (a, _), c in pairs.items() if a == x) / n for x in labels}
    second = {x: sum(c for (_, b), c in pairs.items() if b == x) / n for x in labels}
    chance = sum(first[x] * second[x] for x in labels)
    observed = agreed / n
    # all decisions in one category: agreement by chance is certain and kappa says nothing
    kappa = (observed - chance) / (1 - chance) if chance < 1 else None
    return {"n_items": n, "agreed": agreed, "rate": observed, "kappa": kappa}


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
