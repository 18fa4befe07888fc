"""`stillroom curate`, top to bottom: score → duplicates → selection → gates → review queue → estimate.

Each step is a set-based pass over the store (DuckDB SQL or vectorised numpy), so a million items
take seconds per step, not a Python loop per row. The summary is also the curate run's record;
export and the review dashboard read the gates from it.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from stillroom.curate import gates, quotas, sampling
from stillroom.curate.state import utcnow
from stillroom.ids import content_id


def curate(store: Any, settings: Any, *, rescore: bool = False) -> dict:
    """Run every curation step; returns the summary (with `gates` and `passed`)."""
    from stillroom.curate import dedup, scoring

    started, timings = time.monotonic(), {}
    run_id = content_id("run", {"stage": "curate", "at": utcnow().isoformat(), "pid": os.getpid()}, 16)
    with store.session():
        with store.transaction() as con:
            con.execute("INSERT INTO runs (id, stage, status, started_at, pid, args) VALUES (?, 'curate', 'running', ?, ?, ?)",
                        [run_id, utcnow(), os.getpid(), json.dumps({"rescore": rescore})])
        try:
            t = time.monotonic()
            scored = scoring.score_items(store, settings, force=rescore)
            timings["score_s"] = round(time.monotonic() - t, 2)
            t = time.monotonic()
            dups = dedup.find_duplicates(store, settings)
            timings["dedup_s"] = round(time.monotonic() - t, 2)
            t = time.monotonic()
            with store.transaction() as con:
                mix = quotas.select(con, settings)
                gate_rows = gates.evaluate(con, settings, mix)
                con.execute("DROP TABLE IF EXISTS selection")
            timings["select_and_gates_s"] = round(time.monotonic() - t, 2)
            t = time.monotonic()
            queue = sampling.build_queue(store, settings)
            timings["sampling_s"] = round(time.monotonic() - t, 2)
            summary = {"run_id": run_id, "scored": scored, "duplicates": dups, "selection": mix,
                       "gates": gate_rows, "passed": not gates.failing(gate_rows), "queue": queue,
                       "error_rate": sampling.error_rate_estimate(store, settings), "timings": timings,
                       "seconds": round(time.monotonic() - started, 2)}
        except BaseException:
            _finish(store, run_id, "failed", None)
            raise
        _finish(store, run_id, "done", summary)
    return summary


def _finish(store: Any, run_id: str, status: str, summary: dict | None) -> None:
    with store.transaction() as con:
        con.execute("UPDATE runs SET status = ?, finished_at = ?, summary = ? WHERE id = ?",
                    [status, utcnow(), json.dumps(summary, ensure_ascii=False, default=str) if summary else None,
                     run_id])
