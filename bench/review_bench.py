"""Decide-and-next latency of the review server with a large store and concurrent reviewers.

    python bench/review_bench.py                       # 200,000 items, 10 reviewers, 60 s or 100 decisions each
    python bench/review_bench.py --reviewers 1         # one reviewer: the latency of a key press alone
    python bench/review_bench.py --think-ms 1000       # reviewers who read for a second between key presses
    python bench/review_bench.py --items 20000 --reviewers 4 --decisions 30 --json

Seeds a throwaway project (items, one chunk, the review queue, a score row from every default scorer
per item — numeric_fidelity with its figure evidence), starts `stillroom review` in its own process
on loopback, and has N HTTP clients (threads, one login each) press "approve". Each sample is one
POST /review/decide: the decision is recorded and the next item's page fragment comes back.
Bounded by --decisions per reviewer and by --seconds overall. With --think-ms 0 the reviewers press
again the moment the page arrives, so ten of them measure the server saturated (queueing included);
people read for seconds. Target: p95 <= 50 ms. The load average is printed with the figures: the
server shares the machine with the clients and anything else running.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from stillroom.settings.curate import DEFAULT_WEIGHTS
from stillroom.project import init_project
from stillroom.review_ui.users import add_user

ITEM_RE = re.compile(r'data-item-id="([^"]+)"')
SCORERS = list(DEFAULT_WEIGHTS)


def seed(root: Path, n_items: int, n_reviewers: int) -> tuple[object, dict[str, str]]:
    project, _ = init_project(root)
    source = "员工出差住宿标准为每晚500元，交通补贴每天80元。报销须在出差结束后15日内提交。"
    with project.store().transaction() as con:
        con.execute("INSERT INTO documents (id, file_name, format, size_bytes, n_pages, normalized, dropped_lines) "
                    "VALUES ('doc_bench', 'bench.pdf', 'pdf', 1, 1, false, 0)")
        con.execute("INSERT INTO chunks (id, document_id, seq, page_start, page_end, char_start, char_end, "
                    "heading_path, text, n_tokens, tokenizer, has_figures) VALUES "
                    "('chk_bench', 'doc_bench', 0, 1, 1, 0, 40, '第二章', ?, 40, 'bench', true)", [source])
        con.execute("""INSERT INTO items (id, chunk_id, task, origin, question, answer, messages, provider, model)
            SELECT 'itm_bench_' || i, 'chk_bench', CASE WHEN i % 3 = 0 THEN 'numeric_qa' ELSE 'qa' END, 'distill',
                   '出差住宿标准是多少？#' || i, '每晚500元。',
                   '[{"role":"user","content":"出差住宿标准是多少？"},{"role":"assistant","content":"每晚500元。"}]',
                   'openai', 'bench-model'
            FROM range(?) t(i)""", [n_items])
        con.execute("""INSERT INTO scores (item_id, revision, scorer, scorer_version, value, evidence)
            SELECT 'itm_bench_' || i, 0, s.scorer, 1, random(),
                   CASE WHEN s.scorer = 'numeric_fidelity'
                        THEN '{"figures": [{"text": "500元", "span": [2, 6], "source_span": [11, 15]}]}'
                        ELSE '{"problems": []}' END
            FROM range(?) t(i), (SELECT unnest(?::VARCHAR[]) AS scorer) s""", [n_items, ["overall", *SCORERS]])
        con.execute("""INSERT INTO review_queue (item_id, priority, reason)
            SELECT 'itm_bench_' || i, random(), 'low_score' FROM range(?) t(i)""", [n_items])
    store = project.store()
    return project, {f"rev{i}": add_user(store, f"rev{i}") for i in range(n_reviewers)}


def serve(project_root: Path, port: int, double_share: float) -> subprocess.Popen:
    code = ("import uvicorn, sys; from pathlib import Path; from stillroom.project import Project; "
            "from stillroom.review_ui.app import create_app; "
            "project = Project(Path(%r)); "
            "settings = project.settings.review.model_copy(update={'double_review_share': %r}); "
            "uvicorn.run(create_app(project, settings=settings), host='127.0.0.1', port=%d, log_level='warning')"
            ) % (str(project_root), double_share, port)
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the review server did not start within 60 s")


def reviewer(base: str, name: str, password: str, n: int, stop_at: float, think_s: float, out: list[float],
             errors: list[str]) -> None:
    with httpx.Client(base_url=base, timeout=30) as c:
        page = c.get("/login").text
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        c.post("/login", data={"name": name, "password": password, "csrf": token})
        page = c.get("/review").text
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        pause = random.Random(name)
        time.sleep(pause.uniform(0, think_s))  # people do not start in step
        for _ in range(n):
            m = ITEM_RE.search(page)
            if not m or time.monotonic() > stop_at:
                return
            t = time.perf_counter()
            r = c.post("/review/decide", data={"item_id": m.group(1), "decision": "approve"},
                       headers={"X-CSRF-Token": csrf, "HX-Request": "true"})
            out.append(time.perf_counter() - t)
            if r.status_code != 200 or 'class="status error"' in r.text:
                errors.append(f"{name}: HTTP {r.status_code}")
            page = r.text
            time.sleep(pause.uniform(0.5, 1.5) * think_s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--reviewers", type=int, default=10)
    ap.add_argument("--decisions", type=int, default=100, help="per reviewer")
    ap.add_argument("--seconds", type=float, default=60.0, help="stop every reviewer after this long")
    ap.add_argument("--think-ms", type=float, default=0.0,
                    help="mean pause between a reviewer's decisions, drawn from 0.5-1.5x (0: saturate the server; "
                         "people take seconds)")
    ap.add_argument("--double-share", type=float, default=0.0,
                    help="[review] double_review_share: the share of items two reviewers must decide")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="review-bench-") as tmp:
        t0 = time.perf_counter()
        project, passwords = seed(Path(tmp) / "proj", args.items, args.reviewers)
        seed_s = time.perf_counter() - t0
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = serve(project.root, port, args.double_share)
        try:
            samples: list[float] = []
            errors: list[str] = []
            stop_at = time.monotonic() + args.seconds
            threads = [threading.Thread(target=reviewer, args=(f"http://127.0.0.1:{port}", name, pw, args.decisions,
                                                               stop_at, args.think_ms / 1000, samples, errors))
                       for name, pw in passwords.items()]
            t1 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t1
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    ms = sorted(x * 1000 for x in samples)
    report = {
        "items": args.items, "reviewers": args.reviewers, "think_ms": args.think_ms, "double_share": args.double_share,
        "decisions": len(ms), "errors": len(errors),
        "seed_s": round(seed_s, 1), "wall_s": round(wall, 1),
        "p50_ms": round(statistics.median(ms), 1) if ms else None,
        "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 1) if ms else None,
        "max_ms": round(ms[-1], 1) if ms else None,
        "per_s": round(len(ms) / wall, 1) if wall else None, "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{report['decisions']} decide-and-next requests by {args.reviewers} reviewers over {args.items:,} items "
              f"in {report['wall_s']} s ({report['per_s']}/s, {report['errors']} errors): "
              f"p50 {report['p50_ms']} ms, p95 {report['p95_ms']} ms, max {report['max_ms']} ms "
              f"(think {args.think_ms:g} ms; load average {report['load_avg_1m']} on {report['cpus']} CPUs)")


if __name__ == "__main__":
    main()
