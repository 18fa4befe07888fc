"""A small experiment matrix: `--sweep "lr=1e-4,2e-4 epochs=3,4"` trains every combination, scores each on the
validation split, and picks the best by a named metric — the cheaper run (fewer tokens trained) wins ties."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Callable

from stillroom.errors import UsageError
from stillroom.ids import content_id
from stillroom.train.config import TrainConfig

ALIASES = {"lr": "learning_rate", "r": "lora_r", "alpha": "lora_alpha", "dropout": "lora_dropout",
           "bs": "batch_size", "accum": "gradient_accumulation"}
LOWER_IS_BETTER = {"val_loss", "final_val_loss", "train_loss", "json_rel_error"}


def parse_sweep(spec: str) -> list[dict]:
    """"lr=1e-4,2e-4 epochs=3,4" → four override dicts, values typed by the config field they set."""
    axes = []
    for part in spec.split():
        key, _, values = part.partition("=")
        field = ALIASES.get(key, key)
        if field not in TrainConfig.model_fields or not values:
            raise UsageError(f"--sweep {part!r}: expected KEY=V1,V2 with KEY one of "
                             f"{', '.join(sorted(ALIASES) + sorted(TrainConfig.model_fields))}")
        axes.append([(field, v) for v in values.split(",")])
    return [dict(combo) for combo in itertools.product(*axes)]


def run_sweep(spec: str, base_cfg: TrainConfig, out: Path, train_one: Callable[[TrainConfig, Path], dict],
              score_one: Callable[[Path], dict], metric: str = "val_loss",
              log: Callable[[str], None] = print) -> dict:
    rows = []
    for overrides in parse_sweep(spec):
        cfg = TrainConfig.model_validate({**base_cfg.model_dump(), **overrides})
        run_id = content_id("run", cfg.model_dump(), 10)
        log(f"sweep run {run_id}: {overrides}")
        started = time.monotonic()
        result = train_one(cfg, out / run_id)
        scores = score_one(out / run_id)
        rows.append({"run_id": run_id, "config": overrides, "train_loss": result["final_train_loss"],
                     "val_loss": result["final_val_loss"], "tokens": result["tokens"], **scores,
                     "seconds": round(time.monotonic() - started, 1)})
    if any(r.get(metric) is None for r in rows):
        raise UsageError(f"--metric {metric!r} is missing from some runs; known: {', '.join(k for k in rows[0] if k != 'config')}")
    sign = 1 if metric in LOWER_IS_BETTER else -1
    best = min(rows, key=lambda r: (round(sign * r[metric], 4), r["tokens"]))
    table = sweep_table(rows, metric, best["run_id"])
    (out / "sweep.json").write_text(json.dumps({"metric": metric, "best": best["run_id"], "runs": rows}, indent=1))
    (out / "sweep.md").write_text(table)
    log(table)
    return {"metric": metric, "best": best, "runs": rows}


def sweep_table(rows: list[dict], metric: str, best: str) -> str:
    cols = [c for c in rows[0] if c not in ("run_id", "config")]
    lines = ["| run | config | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for r in rows:
        mark = " ★" if r["run_id"] == best else ""
        vals = [f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c]) for c in cols]
        cfg = " ".join(f"{k}={v}" for k, v in r["config"].items())
        lines.append(f"| {r['run_id']}{mark} | {cfg} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + f"\n\nbest by {metric}: {best}\n"
