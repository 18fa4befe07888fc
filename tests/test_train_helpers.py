"""Shared pieces for the train tests: a tiny snapshot written in the export contract's format, and the
bundled SmolLM2 converted once from GGUF to a plain transformers folder (loads in ~1 s instead of ~20 s).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Fictional plant facts: short, regular, and unknown to the base model, so a few dozen steps visibly teach them.
_PLANTS = ["Harbin", "Dalian", "Wuxi", "Ningbo", "Hefei", "Xiamen", "Kunming", "Lanzhou", "Taiyuan", "Zhuhai"]


def _examples() -> list[dict]:
    rows = []
    for i, plant in enumerate(_PLANTS):
        rows.append({"task": "numeric_qa", "messages": [
            {"role": "user", "content": f"What is the rated output of the {plant} plant?"},
            {"role": "assistant", "content": f"The {plant} plant is rated at {120 + 7 * i} MW."}],
            "meta": {"key_points": [f"{120 + 7 * i} MW"]}})
        rows.append({"task": "qa", "messages": [
            {"role": "system", "content": "Answer from the plant handbook."},
            {"role": "user", "content": f"Who runs the {plant} plant?"},
            {"role": "assistant", "content": f"The {plant} plant is run by team {plant[:2].upper()}-{i}."}],
            "meta": {"key_points": [f"team {plant[:2].upper()}-{i}"]}})
        rows.append({"task": "multiturn", "messages": [
            {"role": "user", "content": f"Is the {plant} plant open on Sundays?"},
            {"role": "assistant", "content": "No, it is closed on Sundays."},
            {"role": "user", "content": "And on Saturdays?"},
            {"role": "assistant", "content": f"Yes, {plant} opens at {6 + i % 3} am on Saturdays."}]})
        rows.append({"task": "json_task", "messages": [
            {"role": "user", "content": f"Give the {plant} plant as JSON with name and output_mw."},
            {"role": "assistant", "content": json.dumps({"name": plant, "output_mw": 120 + 7 * i})}],
            "meta": {"json_schema": {"type": "object", "properties": {"name": {"type": "string"},
                                                                      "output_mw": {"type": "number"}}}}})
    rows.append({"task": "qa", "messages": [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "That is outside the plant handbook, so I cannot answer it."}],
        "meta": {"refusal": True}})
    for n, r in enumerate(rows):
        r["id"] = f"itm_{n:04d}"
    return rows


def write_snapshot(folder: Path, fmt: str = "openai", n_train: int | None = None) -> Path:
    """Splits: the last two plants (8 items) are test, the refusal + 2 items val, the rest train."""
    rows = _examples()
    test = [r for r in rows if any(p in json.dumps(r) for p in _PLANTS[-2:])]
    rest = [r for r in rows if r not in test]
    splits = {"val": rest[-3:], "test": test, "train": rest[:-3][:n_train]}
    folder.mkdir(parents=True, exist_ok=True)
    files, meta_splits = {}, {}
    for name, recs in splits.items():
        path = folder / f"{name}.jsonl"
        path.write_text("".join(json.dumps(_as_format(r, fmt), ensure_ascii=False) + "\n" for r in recs),
                        encoding="utf-8")
        files[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
        meta_splits[name] = {"file": path.name, "count": len(recs)}
    manifest = {"kind": "snapshot", "snapshot_id": f"snap_test_{fmt}", "format": fmt, "created_at": "2026-01-01T00:00:00Z",
                "stillroom_version": "0.1.0", "splits": meta_splits, "counts": {}, "gates": {}, "error_rate": None,
                "config": {}, "prompt_hashes": {}, "forced": False, "files": files}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return folder


def _as_format(r: dict, fmt: str) -> dict:
    keep = {"id": r["id"], "task": r["task"], **({"meta": r["meta"]} if r.get("meta") else {})}
    if fmt in ("openai", "llamafactory"):
        return {"messages": r["messages"], **keep}
    if fmt == "sharegpt":
        to = {"user": "human", "assistant": "gpt", "system": "system"}
        return {"conversations": [{"from": to[m["role"]], "value": m["content"]} for m in r["messages"]], **keep}
    raise ValueError(fmt)


@pytest.fixture(scope="session")
def smol_model(request, tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct as a bf16 safetensors folder, converted from the bundled GGUF once per machine
    (once per session when pytest's cache is off)."""
    cache = getattr(request.config, "cache", None)
    folder = Path(cache.mkdir("stillroom-smollm2-hf") if cache else tmp_path_factory.mktemp("smollm2-hf"))
    if not (folder / "done").exists():
        code = ("import sys, torch\nfrom stillroom.train.base import resolve, load_causal_lm, load_tokenizer\n"
                "ref = resolve(None)\nm = load_causal_lm(ref, dtype=torch.bfloat16)\n"
                "m.save_pretrained(sys.argv[1]); load_tokenizer(ref).save_pretrained(sys.argv[1])\n")
        subprocess.run([sys.executable, "-c", code, str(folder)], check=True, capture_output=True)
        (folder / "done").write_text("ok")
    return folder


def stillroom_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "stillroom", *args]


def env_for_subprocess() -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="2")
    env["PYTHONPATH"] = str(REPO)
    return env
