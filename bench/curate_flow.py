"""The flow half of curation at scale: review queue + audit sample, selection + gates, and export.

    python bench/curate_flow.py [--sizes 100000,300000,1000000]

Items come from bench/curate_scale.py's generator (~500-character source chunks, 5% exact and 5% near
duplicates, figures in most answers). Scores are stand-ins (one `overall` and one `numeric_fidelity`
row per item, 8% of them hard fails) so these steps are timed alone; scoring and dedup have their own
benchmark. Prints wall seconds per step and peak memory (RSS) for each size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from curate_scale import generate, load  # noqa: E402

from stillroom.curate import gates, quotas  # noqa: E402
from stillroom.curate.export import export_snapshot  # noqa: E402
from stillroom.curate.sampling import build_queue  # noqa: E402
from stillroom.project import init_project  # noqa: E402
from stillroom.settings import validate_settings  # noqa: E402


def cpu_s() -> float:
    """CPU seconds of this process (DuckDB's threads included): the machine is shared, so wall time alone misleads."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(n: int) -> dict:
    root = Path(tempfile.mkdtemp(prefix=f"curate-flow-{n}-"))
    project, _ = init_project(root)
    store = project.store()
    chunks, items, _ = generate(n)
    load(store, chunks, items)
    del chunks, items
    with store.transaction() as con:
        con.execute("INSERT INTO scores (item_id, revision, scorer, scorer_version, value, hard_fail, evidence) "
                    "SELECT id, 0, 'overall', 1, CASE WHEN hash(id) % 100 < 8 THEN 0 ELSE 0.6 + (hash(id) % 400) / 1000.0 "
                    "END, hash(id) % 100 < 8, '{}' FROM items")
        con.execute("INSERT INTO scores (item_id, revision, scorer, scorer_version, value, hard_fail, evidence) "
                    "SELECT id, 0, 'numeric_fidelity', 1, 1, hash(id) % 100 < 8, '{\"figures\": [1]}' FROM items")
    settings = validate_settings({"curate": {"gates": {"numeric_fidelity_rate_min": 0.5}}})
    steps, cpu = {}, {}
    t, c = time.monotonic(), cpu_s()
    build_queue(store, settings)
    steps["sampling"], cpu["sampling"] = time.monotonic() - t, cpu_s() - c
    t, c = time.monotonic(), cpu_s()
    with store.connect() as con:
        gates.evaluate(con, settings, quotas.select(con, settings))
    steps["selection+gates"], cpu["selection+gates"] = time.monotonic() - t, cpu_s() - c
    for fmt in ("parquet", "openai"):
        t, c = time.monotonic(), cpu_s()
        m = export_snapshot(store, settings, fmt, root / f"snap-{fmt}")
        steps[f"export {fmt}"], cpu[f"export {fmt}"] = time.monotonic() - t, cpu_s() - c
    shutil.rmtree(root, ignore_errors=True)
    return {"n": n, "exported": m["counts"]["items"], "steps": {k: round(v, 2) for k, v in steps.items()},
            "total_s": round(sum(steps.values()), 2), "cpu_s": {k: round(v, 1) for k, v in cpu.items()},
            "load_avg_1m": round(os.getloadavg()[0], 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,300000,1000000")
    args = ap.parse_args()
    for n in (int(s) for s in args.sizes.split(",")):
        print(json.dumps(run(n)), flush=True)


if __name__ == "__main__":
    main()
