"""Quality gates: rates over the candidate pool, each against its threshold from [curate.gates].

The pool is every scored item a reviewer has not rejected, so reviewing the queue (rejecting what
is bad) is how a failing gate is made to pass; `--force` is the other way, and it is recorded.
Duplicates count towards the duplicate rate only: they are never exported, so they do not drag
the other rates. The JSON and template rates measure the items the format scorer checks for that shape,
whatever their task: a `json_schema` in the meta (or task json_task), a `template` that is not a refusal.
"""

from __future__ import annotations

import json
from typing import Any

from stillroom.curate.state import state_sql

# Each item's flags are worked out before the join, so the join carries no text. ltrim(x) is empty exactly when
# trim(x) is (both strip the same spaces), and ltrim stops at the first other character where trim reads it all.
_RATES = """
WITH st AS (SELECT id, revision, status, status <> 'duplicate' AS u,
                   coalesce(ltrim(question), '') <> '' AND coalesce(ltrim(answer), '') <> '' AS has_fields,
                   task = 'json_task' OR coalesce(json_exists(meta, '$.json_schema'), false) AS is_json,
                   coalesce(json_array_length(meta -> '$.template'), 0) > 0
                     AND NOT coalesce(TRY_CAST(meta ->> '$.refusal' AS BOOLEAN), false) AS is_tpl
            FROM ({state}) WHERE status <> 'rejected' AND overall IS NOT NULL),
flags AS (SELECT item_id, revision,
                 bool_or(hard_fail) FILTER (WHERE scorer = 'format') AS fmt_fail,
                 bool_or(hard_fail) FILTER (WHERE scorer = 'refusal') AS ref_fail,
                 bool_or(hard_fail) FILTER (WHERE scorer = 'numeric_fidelity') AS num_fail
          FROM scores WHERE scorer IN ('format', 'refusal', 'numeric_fidelity') GROUP BY 1, 2)
SELECT
  count(*) FILTER (WHERE u AND st.is_json),
  count(*) FILTER (WHERE u AND st.is_json AND NOT coalesce(f.fmt_fail, false)),
  count(*) FILTER (WHERE u),
  count(*) FILTER (WHERE u AND st.has_fields),
  count(*) FILTER (WHERE u AND st.is_tpl),
  count(*) FILTER (WHERE u AND st.is_tpl AND NOT coalesce(f.fmt_fail, false)),
  count(f.num_fail) FILTER (WHERE u),
  count(f.num_fail) FILTER (WHERE u AND NOT f.num_fail),
  count(*),
  count(*) FILTER (WHERE st.status = 'duplicate'),
  count(*) FILTER (WHERE u AND coalesce(f.ref_fail, false))
FROM st LEFT JOIN flags f ON f.item_id = st.id AND f.revision = st.revision
"""


def evaluate(con: Any, settings: Any, mix: dict | None = None) -> list[dict]:
    """One row per gate: name, value, threshold, op, n (items it is measured on), passed, detail."""
    cfg = getattr(settings, "curate", settings)
    g = cfg.gates
    (n_json, ok_json, n_all, ok_fields, n_tpl, ok_tpl, n_num, ok_num, n_pool, n_dup, n_ref) = con.execute(
        _RATES.format(state=state_sql(cfg.review_below))).fetchone()
    rows = [
        _gate("json_parse_rate", ok_json, n_json, g.json_parse_rate_min, ">="),
        _gate("required_fields", ok_fields, n_all, g.required_fields_min, ">="),
        _gate("template_hit_rate", ok_tpl, n_tpl, g.template_hit_rate_min, ">="),
        _gate("numeric_fidelity_rate", ok_num, n_num, g.numeric_fidelity_rate_min, ">="),
        _gate("duplicate_rate", n_dup, n_pool, g.duplicate_rate_max, "<="),
        _gate("refusal_rate", n_ref, n_all, g.refusal_rate_max, "<="),
    ]
    if mix is not None:
        short = mix.get("shortfalls") or []
        rows.append({"name": "mix", "value": None, "threshold": None, "op": "meets", "n": mix.get("selected", 0),
                     "passed": not short, "detail": "; ".join(short) or "target mix met"})
    return rows


def _gate(name: str, hits: int, n: int, threshold: float, op: str) -> dict:
    if n == 0:
        return {"name": name, "value": None, "threshold": threshold, "op": op, "n": 0, "passed": True,
                "detail": "n/a (no items it applies to)"}
    value = hits / n
    passed = value >= threshold if op == ">=" else value <= threshold
    sign = {">=": "≥", "<=": "≤"}[op]
    return {"name": name, "value": round(value, 4), "threshold": threshold, "op": op, "n": n, "passed": passed,
            "detail": f"{value:.1%} (need {sign} {threshold:.0%}, {hits}/{n} items)"}


def failing(gates: list[dict]) -> list[str]:
    return [g["name"] for g in gates if not g["passed"]]


def latest_gates(store: Any) -> list[dict] | None:
    """The gates the latest finished `stillroom curate` run recorded."""
    row = store.query("SELECT summary FROM runs WHERE stage = 'curate' AND status = 'done' AND summary IS NOT NULL "
                      "ORDER BY finished_at DESC LIMIT 1")
    return json.loads(row[0][0]).get("gates") if row else None
