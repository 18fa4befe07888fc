"""A distill run: plan units, run them on a pool of threads through the router, write what comes back.

Workers never touch the store; the main thread writes each batch of finished units in one short
transaction (items, the unit's status and its calls together), so a kill at any moment leaves every
unit either done with all its items or pending with none, and a rerun redoes only the pending ones.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Callable

from stillroom.distill import plan, records
from stillroom.distill.records import Result
from stillroom.distill.plan import Unit
from stillroom.distill.provider import PROVIDERS, ProviderCallError, Request
from stillroom.distill.router import AllKeysDead, CallRecord, Router, RouterClosed, resolve_chain
from stillroom.distill.tasks import Task, load_tasks
from stillroom.distill.validate import complete_validated
from stillroom.distill.workers import CtrlC, RunLock, WorkerPool
from stillroom.errors import StillroomError, UsageError
from stillroom.ids import content_id
from stillroom.project import Project
from stillroom.store import Store, insert_columns

TICK_S = 0.25
STOP_GRACE_S = 10.0  # after Ctrl-C, how long calls already sent may take to come back and be saved
# Failures a rerun tries again by default: the provider, not the reply, was the problem.
TRANSIENT = {"timeout", "server", "rate_limited", "quota", "auth", "bad_request"}
# This many rejected requests in a row, none done: the model name or server is wrong, not the chunks.
REJECTED_IN_A_ROW = 8


@dataclass
class Options:
    tasks: list[str] | None = None
    provider: str | None = None
    model: str | None = None
    base_url: str | None = None
    limit: int | None = None
    retry_failed: bool = False


class DistillRun:
    def __init__(self, project: Project, opts: Options, on_event: Callable[[str], None] = print) -> None:
        self.project, self.opts, self.on_event = project, opts, on_event
        self.settings = project.settings.distill
        self.store: Store = project.store()
        self.tasks: dict[str, Task] = load_tasks(opts.tasks or self.settings.tasks, self.settings, project.root)
        for task in self.tasks.values():
            task.json_schema  # a bad user schema fails now, not in the middle of the run
        self.chain = resolve_chain(self.settings, opts.provider)
        for name in self.chain:
            PROVIDERS.get(name)  # an unknown name lists the known ones before anything is planned
        self._calls: dict[str, list[CallRecord]] = defaultdict(list)
        self._calls_lock = threading.Lock()
        self.counters: Counter[str] = Counter()

    def plan(self) -> tuple[list[Unit], int]:
        ps = getattr(self.settings.providers, self.chain[0], None)
        model = self.opts.model or (ps.model if ps else "") or "default"
        units, unfit = plan.plan_units(self.store, self.tasks, self.settings.target_mix,
                                       self.settings.samples_per_chunk, self.chain[0], model, self.opts.limit)
        if not units and not unfit:
            raise UsageError("the project has no chunks yet — run `stillroom ingest PATH` first")
        return units, unfit

    def dry_run(self) -> dict:
        units, unfit = self.plan()
        ps = getattr(self.settings.providers, self.chain[0], None)
        est = plan.estimate(units, self.tasks, ps.max_tokens if ps else 1024)
        done = set(r[0] for r in self.store.query("SELECT id FROM work_units WHERE status = 'done'"))
        est.update(provider=self.chain[0], model=units[0].model if units else "", unfit_slots=unfit,
                   already_done=sum(u.id in done for u in units),
                   cost_usd=self._cost(est["tokens_in"], est["tokens_out_typical"], units[0].model if units else ""),
                   plan=[{"unit": u.id, "chunk": u.chunk.id, "task": u.task, "sample": u.sample_index,
                          "done": u.id in done} for u in units])
        return est

    def _cost(self, tokens_in: int, tokens_out: int, model: str) -> float | None:
        price = self.settings.price_per_mtok.get(model) or self.settings.price_per_mtok.get(self.chain[0])
        return None if price is None else round((tokens_in * price[0] + tokens_out * price[1]) / 1e6, 4)

    # --- the run -------------------------------------------------------------------------------
    def execute(self, progress: "Progress | None" = None) -> dict:
        # The session keeps the file open between the many short transactions; Store hands it to any
        # process that queues for it at the next transaction boundary (at least every TICK_S).
        with RunLock(self.project.state_dir), self.store.session():
            router = Router(self.settings, self.chain, on_call=self._on_call, on_event=self.on_event,
                            model=self.opts.model, base_url=self.opts.base_url, project_root=self.project.root)
            units, unfit = self.plan()
            run_id = self._start(units)
            todo = self._todo(units)
            try:
                summary = self._loop(router, run_id, todo, len(units), progress or Progress())
            except BaseException as e:  # a second Ctrl-C, or a bug: the run says so, then the error goes on
                with self.store.transaction() as con:
                    con.execute("UPDATE runs SET status = ?, finished_at = current_timestamp WHERE id = ?",
                                ["stopped" if isinstance(e, KeyboardInterrupt) else "failed", run_id])
                raise
            summary.update(records.ledger(self.store, run_id), unfit_slots=unfit,
                           mix=records.mix_report(self.store, run_id, plan.targets(self.tasks, self.settings.target_mix)))
            status = summary["status"]
            with self.store.transaction() as con:
                if summary["stopped_because"]:
                    con.execute("INSERT INTO run_events (run_id, level, message) VALUES (?, 'error', ?)",
                                [run_id, summary["stopped_because"]])
                con.execute("UPDATE runs SET status = ?, finished_at = current_timestamp, summary = ? WHERE id = ?",
                            [status, json.dumps(summary, default=str), run_id])
            return summary

    def _start(self, units: list[Unit]) -> str:
        run_id = content_id("run", {"t": time.time_ns(), "pid": os.getpid()}, length=16)
        args = {k: v for k, v in vars(self.opts).items() if v not in (None, False)}
        retry = "" if self.opts.retry_failed else f"AND fail_reason IN ({', '.join(repr(k) for k in TRANSIENT)})"
        cols = {"id": [u.id for u in units], "run_id": [run_id] * len(units), "chunk_id": [u.chunk.id for u in units],
                "task": [u.task for u in units], "prompt_hash": [u.prompt_hash for u in units],
                "provider": [u.provider for u in units], "model": [u.model for u in units],
                "sample_index": [u.sample_index for u in units], "status": ["pending"] * len(units)}
        with self.store.transaction() as con:
            # A distill run still marked running holds no lock any more (we hold it): it was killed.
            con.execute("UPDATE runs SET status = 'killed' WHERE stage = 'distill' AND status = 'running'")
            con.execute("INSERT INTO runs (id, stage, status, pid, args) VALUES (?, 'distill', 'running', ?, ?)",
                        [run_id, os.getpid(), json.dumps(args)])
            # The plan's units, new or not, belong to this run now: its ledger covers the whole plan.
            insert_columns(con, "work_units", cols)
            con.execute("UPDATE work_units SET run_id = ? WHERE id IN (SELECT unnest(?::VARCHAR[]))",
                        [run_id, cols["id"]])
            con.execute(f"UPDATE work_units SET status = 'pending', fail_reason = NULL WHERE status = 'failed' "
                        f"AND run_id = ? {retry}", [run_id])
        return run_id

    def _todo(self, units: list[Unit]) -> list[Unit]:
        pending = {r[0] for r in self.store.query("SELECT id FROM work_units WHERE status = 'pending'")}
        return [u for u in units if u.id in pending]

    def _on_call(self, rec: CallRecord) -> None:
        with self._calls_lock:
            self._calls[rec.unit_id or ""].append(rec)
            self.counters[rec.status] += 1

    def _work(self, unit: Unit, router: Router) -> Result:
        task = self.tasks[unit.task]
        request = Request(messages=task.render(unit.chunk), json_schema=task.json_schema, schema_name=task.name,
                          source=unit.chunk.text)
        result = Result(unit, "pending")
        try:
            outcome = complete_validated(lambda r: router.complete(r, unit.id), request, task.model(),
                                         lambda reply: task.check(reply, unit.chunk))
        except (AllKeysDead, RouterClosed) as e:
            result.stop = e
        except ProviderCallError as e:
            result.status, result.reason, result.error = "failed", e.kind, e.message
        else:
            result.attempts = outcome.attempts
            if outcome.reply is not None:
                result.status, result.items = "done", task.to_items(outcome.reply, unit.chunk)
                last = outcome.attempts[-1].completion
                result.provider, result.model = last.provider, last.model
            else:
                result.status, result.reason, result.error = "failed", outcome.reason, outcome.error
        with self._calls_lock:
            result.calls = self._calls.pop(unit.id, [])
        return result

    def _loop(self, router: Router, run_id: str, todo: list[Unit], planned: int, progress: "Progress") -> dict:
        pool = WorkerPool(self.settings.concurrency, lambda u: self._work(u, router),
                          crashed=lambda unit, e: Result(unit, "pending", crash=e))
        pending, stopped, give_up_at, rejected = list(reversed(todo)), None, math.inf, 0
        t0 = time.monotonic()
        progress.start(planned, planned - len(todo))
        with CtrlC() as ctrl_c:
            try:
                while ((pending and stopped is None) or pool.in_flight) and time.monotonic() < give_up_at:
                    if ctrl_c.pressed and stopped is None:
                        stopped, give_up_at = StillroomError("stopped by Ctrl-C"), time.monotonic() + STOP_GRACE_S
                        router.close()  # requests not yet sent give up; calls under way may finish
                    while pending and stopped is None and pool.in_flight < self.settings.concurrency:
                        pool.submit(pending.pop())
                    # Everything finished so far goes in one transaction: a kill loses only units in flight.
                    # With nothing to write it is still a boundary at which a waiting process gets the file.
                    batch = pool.ready(timeout=TICK_S)
                    for res in batch:
                        if res.crash is not None:
                            raise res.crash
                        if res.reason == "bad_request":
                            rejected += 1
                        elif res.status == "done":
                            rejected = 0
                        if res.stop is None and rejected >= REJECTED_IN_A_ROW:
                            res.stop = StillroomError(f"{rejected} requests in a row were rejected ({res.error}) — "
                                                      "check the model name and base_url, then run again")
                        if res.stop is not None and stopped is None:
                            stopped = res.stop
                            router.close()
                        progress.advance(res, router, self.counters["rate_limited"])
                    self._flush(run_id, batch, router)
            finally:
                progress.stop()
        return self._summary(run_id, time.monotonic() - t0, stopped)

    def _flush(self, run_id: str, results: list[Result], router: Router) -> None:
        items, calls, units, events = [], [], [], []
        for r in results:
            units.append((r.status, r.reason, len(r.calls), r.unit.id))
            calls += records.call_rows(run_id, r)
            for draft in r.items:
                items.append(records.item_row(r, draft))
            if r.status == "failed":
                events.append((run_id, "warning", r.unit.id, f"{r.unit.task} failed: {r.reason}: {r.error}"[:2000]))
        with self.store.transaction() as con:
            if items:
                con.executemany("INSERT INTO items (id, unit_id, chunk_id, task, origin, question, answer, messages, "
                                "prompt_hash, provider, model, meta) VALUES (?, ?, ?, ?, 'distill', ?, ?, ?, ?, ?, ?, ?) "
                                "ON CONFLICT (id) DO NOTHING", items)
            if units:
                con.executemany("UPDATE work_units SET status = ?, fail_reason = ?, attempts = attempts + ?, "
                                "updated_at = current_timestamp WHERE id = ?", units)
            if calls:
                con.executemany("INSERT INTO calls (unit_id, run_id, provider, key_alias, model, latency_ms, tokens_in, "
                                "tokens_out, status, error_class, raw_text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", calls)
            if events:
                con.executemany("INSERT INTO run_events (run_id, level, subject, message) VALUES (?, ?, ?, ?)", events)
            records.save_key_states(con, [r for r in router.key_states() if PROVIDERS.get(r["provider"]).needs_key])

    def _summary(self, run_id: str, elapsed: float, stopped: StillroomError | None) -> dict:
        row = self.store.query("SELECT count(*), coalesce(sum(tokens_in), 0), coalesce(sum(tokens_out), 0), "
                               "count(*) FILTER (WHERE status = 'rate_limited') FROM calls WHERE run_id = ?", [run_id])[0]
        items = self.store.scalar("SELECT count(*) FROM items i JOIN work_units w ON w.id = i.unit_id "
                                  "WHERE w.run_id = ? AND i.created_at >= (SELECT started_at FROM runs WHERE id = ?)",
                                  [run_id, run_id])
        return {"run_id": run_id, "status": "done" if stopped is None else "stopped",
                "stopped_because": str(stopped) if stopped else None, "elapsed_s": round(elapsed, 2), "calls": row[0], "tokens_in": row[1], "tokens_out": row[2],
                "rate_limited": row[3], "items_this_run": items,
                "items_per_s": round(items / elapsed, 2) if elapsed else 0.0,
                "cost_usd": self._cost(row[1], row[2], self.opts.model or ""), "chain": self.chain}


class Progress:
    """No-op progress; the CLI passes a rich one. Kept here so the runner works without a terminal."""

    def start(self, total: int, done: int) -> None: ...

    def advance(self, result: Result, router: Router, rate_limited: int) -> None: ...

    def stop(self) -> None: ...
