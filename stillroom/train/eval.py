"""`stillroom eval`: generate on a snapshot's held-out split with the tuned model (and the base model), score,
and write report.json, report.md and eval_chart.png.

The report pins the adapter, snapshot and base-model hashes it used, and refuses to run when they do not
belong together, or to write into a folder holding another run's report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from stillroom.errors import StillroomError
from stillroom.train.base import BaseRef, fingerprint, load_causal_lm, load_tokenizer, pick_device
from stillroom.train.data import open_snapshot, render
from stillroom.train.manifest import adapter_hash, read_manifest, verify_adapter
from stillroom.train.metrics import score_item


class MixedRunError(StillroomError):
    """The adapter, snapshot, base model or output folder belong to different runs."""


def check_inputs(adapter: Path, snapshot: Path | None) -> tuple[dict, object, BaseRef, dict]:
    """The adapter intact, its snapshot and base model the very ones it was trained on."""
    problems = verify_adapter(adapter)
    if problems:
        raise MixedRunError(f"{adapter}: adapter does not match its manifest:\n  " + "\n  ".join(problems))
    manifest = read_manifest(adapter)
    snap = open_snapshot(Path(snapshot or manifest["snapshot_path"]))
    if (snap.id, snap.hash) != (manifest["snapshot_id"], manifest["snapshot_hash"]):
        raise MixedRunError(f"{snap.path} is snapshot {snap.id} ({snap.hash[:12]}…), but {adapter} was trained on "
                            f"{manifest['snapshot_id']} ({manifest['snapshot_hash'][:12]}…) — pass --snapshot with that one")
    ref = BaseRef(manifest["base_model"], manifest["base_ref"]["folder"], manifest["base_ref"]["gguf_file"])
    base_hash = fingerprint(ref)
    if base_hash != manifest["base_model_hash"]:
        raise MixedRunError(f"base model {ref.name} has changed since training (hash {base_hash[:12]}… ≠ "
                            f"{manifest['base_model_hash'][:12]}…) — restore it or retrain")
    hashes = {"adapter": str(Path(adapter).resolve()), "adapter_hash": adapter_hash(adapter),
              "snapshot_id": snap.id, "snapshot_hash": snap.hash, "base_model": ref.name, "base_model_hash": base_hash}
    return manifest, snap, ref, hashes


def evaluate(adapter: Path, out: Path, split: str = "test", baseline: bool = False, snapshot: Path | None = None,
             max_new_tokens: int | None = None, limit: int | None = None,
             log: Callable[[str], None] = print) -> dict:
    manifest, snap, ref, hashes = check_inputs(Path(adapter), snapshot)
    out = Path(out)
    _refuse_other_run(out, hashes)
    examples = snap.split(split)[:limit]
    import torch
    from peft import PeftModel

    device = pick_device()
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    tokenizer = load_tokenizer(ref)
    model = PeftModel.from_pretrained(load_causal_lm(ref, dtype=dtype).to(device), str(adapter)).eval()
    budget = max_new_tokens or manifest["config"].get("eval_max_new_tokens", 256)
    thinking = manifest["config"].get("enable_thinking", False)
    log(f"eval on {split} split of {snap.id}: {len(examples)} items · device {device.type}"
        + (" · with baseline" if baseline else ""))
    runs = {"tuned": generate(model, tokenizer, examples, budget, thinking, device)}
    if baseline:
        with model.disable_adapter():
            runs["base"] = generate(model, tokenizer, examples, budget, thinking, device)
    report = build_report(examples, runs, hashes, split)
    write_report(report, out, log)
    return report


def generate(model, tokenizer, examples: list[dict], max_new_tokens: int, thinking: bool, device,
             batch_size: int = 8) -> list[str]:
    """Greedy answers to each example's conversation up to its last assistant turn, left-padded in batches."""
    import torch

    prompts = [render(tokenizer, _prompt_turns(ex["messages"]), thinking, add_generation_prompt=True) for ex in examples]
    tokenizer.padding_side = "left"
    answers = []
    for i in range(0, len(prompts), batch_size):
        enc = tokenizer(prompts[i:i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        answers += tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return [a.strip() for a in answers]


def _prompt_turns(messages: list[dict]) -> list[dict]:
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return messages[:last]


def build_report(examples: list[dict], runs: dict[str, list[str]], hashes: dict, split: str) -> dict:
    items, by_task, overall = [], {}, {}
    for label, preds in runs.items():
        per_task: dict[str, dict[str, list[float]]] = {}
        for ex, pred in zip(examples, preds):
            ref = [m for m in ex["messages"] if m["role"] == "assistant"][-1]["content"]
            scores = score_item(pred, ref, ex["task"], ex["meta"])
            items.append({"model": label, "id": ex["id"], "task": ex["task"], "prediction": pred, "reference": ref,
                          "scores": scores})
            for metric, v in scores.items():
                if v is not None:
                    per_task.setdefault(ex["task"], {}).setdefault(metric, []).append(v)
                    per_task.setdefault("overall", {}).setdefault(metric, []).append(v)
        means = {t: {m: round(sum(v) / len(v), 4) for m, v in ms.items()} for t, ms in per_task.items()}
        overall[label] = means.pop("overall", {})
        by_task[label] = means
    return {"kind": "eval", "split": split, "n_items": len(examples), **hashes,
            "overall": overall, "by_task": by_task, "items": items}


def _refuse_other_run(out: Path, hashes: dict) -> None:
    old = out / "report.json"
    if old.exists():
        prev = json.loads(old.read_text(encoding="utf-8"))
        keys = ("adapter_hash", "snapshot_hash", "base_model_hash")
        if any(prev.get(k) != hashes[k] for k in keys):
            raise MixedRunError(f"{out} holds the report of another run (adapter {prev.get('adapter_hash', '?')[:12]}…); "
                                "pick an empty --out folder so reports of different runs never mix")


def write_report(report: dict, out: Path, log: Callable[[str], None]) -> None:
    from stillroom.train.plots import plot_eval

    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    table = markdown_table(report)
    (out / "report.md").write_text(table, encoding="utf-8")
    log(table)
    for problem in plot_eval(report["overall"], out):
        log(problem)


def markdown_table(report: dict) -> str:
    labels = list(report["overall"])
    rows = ["| task | metric | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(labels)]
    sections = [("overall", {lab: report["overall"][lab] for lab in labels})]
    tasks = sorted({t for lab in labels for t in report["by_task"][lab]})
    sections += [(t, {lab: report["by_task"][lab].get(t, {}) for lab in labels}) for t in tasks]
    for name, scores in sections:
        for metric in sorted({m for s in scores.values() for m in s}):
            vals = [f"{scores[lab][metric]:.3f}" if metric in scores[lab] else "–" for lab in labels]
            rows.append(f"| {name} | {metric} | " + " | ".join(vals) + " |")
    return "\n".join(rows) + "\n"
