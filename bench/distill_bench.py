"""Distill throughput against a rate-limited fake server, and what a mid-run SIGKILL costs.

    python bench/distill_bench.py                     # the issue's setting: 500 chunks, 4 keys x 60 RPM (~5 min)
    python bench/distill_bench.py --rpm 600 --json    # the same shape, ten times faster
    python bench/distill_bench.py --router-only       # the Router alone on 16 threads, no runner, no store

The fake server (tests/fakellm) speaks the OpenAI wire format to the real `openai` SDK: four keys
with a server-side RPM limit each, one of them out of quota and one invalid, 3% 5xx, 2% replies
that are not JSON, 100-600 ms latency. `stillroom distill` runs in a subprocess, is killed with
SIGKILL after --kill-at of the units have had a reply, and is run again to the end.

Ceiling: the usable keys' summed RPM. Throughput: requests the usable keys served (everything but
429s and dead keys' refusals) per second of the final run, from 3 s after its first request (past
the start-up burst) to its last, so neither process start-up nor the burst allowance skews it; the
wall-clock figure, start-up included, is printed too. Targets: >= 0.9
of the ceiling, 0 lost, 0 duplicates; redone units at most the units in flight at the kill.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.fakellm and the runner's test helpers

from tests.fakellm import FakeLLMServer  # noqa: E402
from tests.test_distill_run_helpers import fake_reply, make_project, many_chunks, set_provider  # noqa: E402

KEYS = {"sk-bench-ok-1": {}, "sk-bench-ok-2": {}, "sk-bench-quota": {"quota": True}, "sk-bench-bad": {"invalid": True}}


def distill(root: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "stillroom", "distill", "--json"], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def counts(project) -> dict:
    q = project.store().query
    return {"units": dict(q("SELECT status, count(*) FROM work_units GROUP BY ALL")),
            "items": q("SELECT count(*) FROM items")[0][0],
            "duplicates": q("SELECT count(*) FROM (SELECT unit_id FROM items GROUP BY unit_id HAVING count(*) > 1)")[0][0],
            "done_without_item": q("SELECT count(*) FROM work_units w WHERE status = 'done' AND NOT EXISTS "
                                   "(SELECT 1 FROM items i WHERE i.unit_id = w.id)")[0][0]}


def served(srv: FakeLLMServer, since: float) -> list[float]:
    """Times of requests the usable keys served (anything but a 429 or a dead key's refusal)."""
    return sorted(e.at for e in srv.log if e.at >= since and e.outcome not in ("rate_limit", "quota", "auth"))


def router_only(args: argparse.Namespace) -> dict:
    """The same server and keys, requests straight through `Router.complete` from 16 threads."""
    from concurrent.futures import ThreadPoolExecutor

    from stillroom.distill.provider import Request
    from stillroom.distill.router import Router
    from tests.fakellm import fake_settings

    os.environ["OPENAI_API_KEYS"] = ",".join(KEYS)
    with FakeLLMServer(latency=(0.1, 0.6), p_server_error=0.03, p_malformed=0.02, seed=7) as srv:
        for key, behaviour in KEYS.items():
            srv.key(key, rpm=args.rpm, **behaviour)
        router = Router(fake_settings(srv, ["openai"], rpm=args.rpm, concurrency=args.concurrency, backoff_s=0.5),
                        on_event=lambda msg: None)
        with ThreadPoolExecutor(args.concurrency) as pool:
            replies = list(pool.map(lambda i: router.complete(Request(messages=[{"role": "user", "content": f"q{i}"}])),
                                    range(args.chunks)))
        times, rate_limited = served(srv, 0.0), srv.count(outcome="rate_limit")
    ceiling = sum(1 for b in KEYS.values() if not b) * args.rpm / 60
    return {"requests": args.chunks, "replies": len(replies), "ceiling_rps": ceiling,
            "fraction_of_ceiling": steady_fraction(times, ceiling), "rate_limited_429s": rate_limited}


def steady_fraction(times: list[float], ceiling: float) -> float:
    """Requests per second from 3 s after the first (the client's 2 s burst allowance is spent by
    then, so a short run is not flattered by it) to the last, as a share of the ceiling."""
    steady = [t for t in times if t >= times[0] + 3.0]
    return round((len(steady) - 1) / (steady[-1] - steady[0]) / ceiling, 3) if len(steady) > 1 else float("nan")


def kill_and_resume(args: argparse.Namespace) -> dict:
    env = {**os.environ, "OPENAI_API_KEYS": ",".join(KEYS), "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory() as tmp, FakeLLMServer(reply=fake_reply, latency=(0.1, 0.6), p_server_error=0.03,
                                                             p_malformed=0.02, seed=7) as srv:
        for key, behaviour in KEYS.items():
            srv.key(key, rpm=args.rpm, **behaviour)
        project = make_project(Path(tmp) / "p", many_chunks(args.chunks), provider='"openai"',
                               concurrency=str(args.concurrency))
        set_provider(project, "openai", {"backoff_s": 0.5}, model="fake-model", rpm=args.rpm, base_url=srv.openai_url)

        first = distill(project.root, env)
        while srv.count(outcome="ok") < args.kill_at * args.chunks:
            if first.poll() is not None:
                sys.exit(f"the first run ended before the kill ({first.returncode}):\n{first.stderr.read()[-3000:]}")
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.communicate()
        replied_before_kill = srv.count(outcome="ok") + srv.count(outcome="garbage")
        finished_at_kill = sum(n for st, n in counts(project)["units"].items() if st in ("done", "failed"))

        t0 = time.monotonic()
        second = distill(project.root, env)
        out, err = second.communicate()
        wall = time.monotonic() - t0
        if second.returncode not in (0, 1) or not out.strip():
            sys.exit(f"the rerun failed ({second.returncode}):\n{err[-3000:]}")
        summary, final, times = json.loads(out), counts(project), served(srv, t0)
        outcomes = {k: srv.count(outcome=k) for k in ("rate_limit", "server", "garbage", "reply_error")}

    ceiling = sum(1 for b in KEYS.values() if not b) * args.rpm / 60
    planned, units = sum(final["units"].values()), final["units"]
    return {
        "chunks": args.chunks, "units": planned, "ceiling_rps": ceiling,
        "fraction_of_ceiling": steady_fraction(times, ceiling),
        "wall_fraction_of_ceiling": round(len(times) / wall / ceiling, 3), "rerun_wall_s": round(wall, 1),
        "lost": planned - units.get("done", 0) - units.get("failed", 0) + final["done_without_item"],
        "duplicates": final["duplicates"], "failed_by_reason": summary.get("failed"),
        "finished_before_kill": finished_at_kill, "redone_after_kill": replied_before_kill - finished_at_kill,
        "rate_limited_429s": outcomes["rate_limit"], "server_errors": outcomes["server"],
        "malformed": outcomes["garbage"], "fake_reply_errors": outcomes["reply_error"],
        "summary_balanced": summary.get("balanced"),
    }


def show(report: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report))
    else:
        for k, v in report.items():
            print(f"{k:>24}: {v}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chunks", type=int, default=500)
    ap.add_argument("--rpm", type=int, default=60, help="per key, enforced by the server and budgeted by the client")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--kill-at", type=float, default=0.4, help="share of units replied to before the SIGKILL")
    ap.add_argument("--router-only", action="store_true", help="benchmark Router.complete alone")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    show(router_only(args) if args.router_only else kill_and_resume(args), args.json)


if __name__ == "__main__":
    main()
