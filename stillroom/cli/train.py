"""`stillroom train`, `eval`, `chat`, `merge`. torch and transformers are imported inside each command only."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from stillroom.cli.app import JsonOpt, Output, ProjectOpt, app
from stillroom.errors import ProjectNotFound

AdapterArg = Annotated[Path, typer.Argument(help="Adapter folder written by `stillroom train`.", exists=True,
                                            file_okay=False)]


def _train_defaults(project: Path | None):
    """[train] settings of the project, when there is one; training itself never touches the database."""
    from stillroom.project import find_project
    from stillroom.settings.train import TrainSettings

    try:
        proj = find_project(project)
    except ProjectNotFound:
        if project:
            raise
        return TrainSettings(), Path.cwd()
    return proj.settings.train, proj.root


@app.command()
def train(
    snapshot: Annotated[Path, typer.Argument(help="Snapshot folder from `stillroom export`.", exists=True, file_okay=False)],
    config: Annotated[Optional[Path], typer.Option("--config", help="train.toml; its keys override the preset's.")] = None,
    preset: Annotated[Optional[str], typer.Option(help="cpu-small, qwen3-8b-qlora-r16, qwen3-8b-qlora-r8.")] = None,
    base_model: Annotated[Optional[str], typer.Option("--base-model", help="Hugging Face id, folder or .gguf (default: bundled SmolLM2-135M-Instruct).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Adapter folder (default: adapters/<snapshot id>).")] = None,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", help="Stop after N optimizer steps (smoke runs).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the newest checkpoint in --out.")] = False,
    sweep: Annotated[Optional[str], typer.Option("--sweep", help='Experiment matrix, e.g. "lr=1e-4,2e-4 epochs=3,4".')] = None,
    metric: Annotated[str, typer.Option("--metric", help="Sweep: pick the best run by this (val_loss, rouge_l, …).")] = "val_loss",
    print_config: Annotated[bool, typer.Option("--print-config", help="Show the resolved config as train.toml and exit.")] = False,
    project: ProjectOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Train a LoRA adapter (QLoRA on CUDA) on a snapshot's train split."""
    from stillroom.train.config import config_toml, load_config

    out_ = Output(json_)
    settings, root = _train_defaults(project)
    cfg = load_config(config, preset or settings.preset)
    if print_config:
        sys.stdout.write(config_toml(cfg))
        return
    from stillroom.train.data import open_snapshot
    from stillroom.train.recipe import train as run_train

    base = base_model or settings.base_model or None
    out = out or root / settings.adapters_dir / open_snapshot(snapshot).id
    if sweep:
        from stillroom.train.eval import evaluate
        from stillroom.train.sweep import run_sweep

        def score(adapter: Path) -> dict:
            adapter = adapter.resolve()
            report = evaluate(adapter, adapter.with_name(adapter.name + "-eval-val"), split="val", log=lambda _m: None)
            return report["overall"]["tuned"]

        result = run_sweep(sweep, cfg, out, lambda c, o: run_train(snapshot, c, o, base, max_steps, log=out_.say),
                           score, metric, log=out_.say)
    else:
        result = run_train(snapshot, cfg, out, base, max_steps, resume, log=out_.say)
    if os.environ.get("RANK", "0") == "0":  # under torchrun every process returns; one summary is enough
        out_.summary(result)


@app.command(name="eval")
def eval_(
    adapter: AdapterArg,
    split: Annotated[str, typer.Option(help="Snapshot split to generate on.")] = "test",
    baseline: Annotated[bool, typer.Option("--baseline", help="Also score the base model without the adapter.")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", help="Report folder (default: ADAPTER-eval-SPLIT beside the adapter).")] = None,
    snapshot: Annotated[Optional[Path], typer.Option(help="Snapshot folder, if it moved since training.")] = None,
    max_new_tokens: Annotated[Optional[int], typer.Option("--max-new-tokens", help="Answer length cap.")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Only the first N items (quick looks).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Score the tuned model (and the base with --baseline) on a held-out split: table, JSON and chart."""
    from stillroom.train.eval import evaluate

    out_ = Output(json_)
    adapter = adapter.resolve()
    report = evaluate(adapter, out or adapter.with_name(f"{adapter.name}-eval-{split}"), split, baseline, snapshot, max_new_tokens, limit,
                      log=out_.say)
    out_.summary({k: v for k, v in report.items() if k != "items"})


@app.command()
def chat(
    adapter: AdapterArg,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Answer length cap.")] = 256,
) -> None:
    """Talk to the tuned model by hand (an empty line or Ctrl-D ends)."""
    from stillroom.train.chat import chat_loop

    chat_loop(adapter, max_new_tokens)


@app.command()
def merge(
    adapter: AdapterArg,
    out: Annotated[Path, typer.Option("--out", help="Folder for the merged model.", file_okay=False)],
    gguf: Annotated[Optional[str], typer.Option(help="Also write GGUF of this type (f16, bf16, q8_0) via llama.cpp.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Merge the adapter into its base model and save safetensors (and GGUF with --gguf)."""
    from stillroom.train.merge import merge as run_merge

    out_ = Output(json_)
    out_.summary(run_merge(adapter, out, gguf, log=out_.say))
