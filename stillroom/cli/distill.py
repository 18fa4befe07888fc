from __future__ import annotations

import shlex
import sys
from typing import Annotated, Optional

import typer

from stillroom.cli.app import EXIT_OK, EXIT_PARTIAL, JsonOpt, Output, ProjectOpt, app
from stillroom.project import find_project


@app.command()
def distill(
    task: Annotated[Optional[list[str]], typer.Option(
        "--task", "-t", metavar="NAME", help="Task to run (repeat for several); default: [distill] tasks.")] = None,
    provider: Annotated[Optional[str], typer.Option(
        metavar="NAME", help="Provider for this run (openai, gemini, zhipu, local); overrides stillroom.toml.")] = None,
    model: Annotated[Optional[str], typer.Option(
        metavar="MODEL", help="Model for this run; overrides the provider's model.")] = None,
    base_url: Annotated[Optional[str], typer.Option(
        "--base-url", metavar="URL", help="Server for this run, e.g. a local vLLM or a proxy.")] = None,
    limit: Annotated[Optional[int], typer.Option(min=1, metavar="N", help="Only the first N chunks.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the units and estimated tokens/cost; call nothing.")] = False,
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed", help="Also redo units whose replies failed validation (provider failures are always retried).")] = False,
    project: ProjectOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Turn chunks into training items with an LLM. Resumable: run the same command again after a stop or a kill."""
    from stillroom.distill.runner import DistillRun, Options

    out = Output(json_)
    proj = find_project(project)
    opts = Options(tasks=task, provider=provider, model=model, base_url=base_url, limit=limit, retry_failed=retry_failed)
    run = DistillRun(proj, opts, on_event=lambda msg: out.say(f"[yellow]{msg}[/yellow]"))
    if dry_run:
        est = run.dry_run()
        out.say(f"{est['units']} units with {est['provider']}/{est['model']} ({est['already_done']} already done): "
                + ", ".join(f"{t} {n}" for t, n in est["by_task"].items()))
        cost = "unknown (no price in [distill] price_per_mtok)" if est["cost_usd"] is None else f"${est['cost_usd']:.4f}"
        out.say(f"estimated tokens: ~{est['tokens_in']:,} in, ~{est['tokens_out_typical']:,} out "
                f"(at most {est['tokens_out_max']:,}); estimated cost {cost}")
        out.summary(est)
        return
    summary = run.execute(_RichProgress(out) if not json_ else None)
    _report(out, summary)
    out.summary(summary)
    if summary["status"] != "done" or summary["failed"] or summary["pending"]:
        raise typer.Exit(EXIT_PARTIAL)
    raise typer.Exit(EXIT_OK)


def _report(out: Output, s: dict) -> None:
    failed = sum(s["failed"].values())
    reasons = ", ".join(f"{r} {n}" for r, n in sorted(s["failed"].items()))
    out.say(f"units: {s['planned']} planned = {s['done']} done + {failed} failed"
            + (f" ({reasons})" if reasons else "") + f" + {s['pending']} not yet run")
    out.say("items: " + (", ".join(f"{t} {n}" for t, n in s["items"].items()) or "none")
            + f"; this run {s['items_this_run']} in {s['elapsed_s']:.1f}s ({s['items_per_s']:.2f} items/s)")
    cost = "" if s["cost_usd"] is None else f", estimated cost ${s['cost_usd']:.4f}"
    out.say(f"calls {s['calls']}, 429s {s['rate_limited']}, tokens {s['tokens_in']:,} in / {s['tokens_out']:,} out{cost}")
    out.say("mix: " + ", ".join(f"{t} {m['reached']:.0%} (target {m['target']:.0%})" for t, m in s["mix"].items()))
    if s["status"] != "done":
        out.problem(f"{s['stopped_because']}\n{s['pending']} units not yet run — resume with: "
                    f"{' '.join(shlex.quote(a) for a in ['stillroom', *sys.argv[1:]])}")
    elif failed:
        out.problem(f"{failed} units failed ({reasons}); see `stillroom status` — `--retry-failed` redoes replies "
                    "that failed validation")


class _RichProgress:
    """Units done/total, items, items/s, usable keys and 429s, on stderr."""

    def __init__(self, out: Output) -> None:
        self.console = out.console

    def start(self, total: int, done: int) -> None:
        import time

        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.t0, self.items = time.monotonic(), 0
        self.bar = Progress(TextColumn("distill"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[items]} items · {task.fields[rate]:.1f}/s · "
                                       "keys {task.fields[keys]} · 429s {task.fields[r429]}"),
                            TimeRemainingColumn(), console=self.console)
        self.bar.start()
        self.task = self.bar.add_task("", total=total, completed=done, items=0, rate=0.0, keys="-", r429=0)

    def advance(self, result, router, rate_limited: int) -> None:
        import time

        self.items += len(result.items)
        states = router.key_states()
        keys = f"{sum(r['state'] == 'ok' for r in states)}/{len(states)}"
        rate = self.items / max(time.monotonic() - self.t0, 1e-6)
        self.bar.update(self.task, advance=1 if result.status != "pending" else 0, items=self.items, rate=rate,
                        keys=keys, r429=rate_limited)

    def stop(self) -> None:
        self.bar.stop()
