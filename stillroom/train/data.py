"""A snapshot folder → tokenised examples with labels on the assistant's tokens only → packed micro-batches.

Reads the snapshot and its manifest, never the database. Every format the exporter writes is read back
into one shape: `{"id", "task", "meta", "messages"}`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from stillroom.errors import StillroomError
from stillroom.ids import file_sha256

IGNORE = -100  # label value the loss skips
_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "system": "system"}


class SnapshotError(StillroomError):
    """The snapshot is missing, malformed, or does not match its manifest."""


@dataclass
class Snapshot:
    path: Path
    manifest: dict
    hash: str  # sha256 of manifest.json, which itself pins every file's sha256

    @property
    def id(self) -> str:
        return self.manifest.get("snapshot_id", self.path.name)

    def split(self, name: str) -> list[dict]:
        splits = self.manifest.get("splits", {})
        if name not in splits:
            raise SnapshotError(f"{self.path}: no {name!r} split; it has: {', '.join(splits) or 'none'}")
        return read_records(self.path / splits[name]["file"], self.manifest.get("format", "openai"))


def open_snapshot(path: Path) -> Snapshot:
    """Refuses a snapshot whose files do not match the sha256 its manifest records."""
    path = Path(path)
    mpath = path / "manifest.json"
    if not mpath.exists():
        raise SnapshotError(f"{path}: no manifest.json — point at a folder written by `stillroom export`")
    manifest = json.loads(mpath.read_text(encoding="utf-8"))
    if manifest.get("kind", "snapshot") != "snapshot":
        raise SnapshotError(f"{path}: manifest kind is {manifest.get('kind')!r}, not a snapshot")
    problems = [f"{rel}: missing" if not (path / rel).exists() else f"{rel}: changed since export (sha256 differs)"
                for rel, sha in manifest.get("files", {}).items()
                if not (path / rel).exists() or file_sha256(path / rel) != sha]
    if problems:
        raise SnapshotError(f"{path}: snapshot does not match its manifest — re-export it or restore the files:\n  "
                            + "\n  ".join(problems))
    return Snapshot(path, manifest, file_sha256(mpath))


def read_records(file: Path, fmt: str) -> list[dict]:
    if file.suffix == ".parquet":
        rows = _read_parquet(file)
    else:
        rows = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [to_example(r, fmt, f"{file.name}:{i + 1}") for i, r in enumerate(rows)]


def _read_parquet(file: Path) -> list[dict]:
    import duckdb  # already a stillroom dependency; reads parquet without pyarrow

    con = duckdb.connect()
    try:
        cur = con.execute("SELECT * FROM read_parquet(?)", [str(file)])
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row)) for row in cur.fetchall()]
    finally:
        con.close()


def to_example(rec: dict, fmt: str, where: str = "") -> dict:
    """One record of any export format → {"id", "task", "meta", "messages"}."""
    meta = rec.get("meta") or {}
    if isinstance(meta, str):
        meta = json.loads(meta)
    if "messages" in rec:
        msgs = rec["messages"]
        msgs = json.loads(msgs) if isinstance(msgs, str) else msgs
    elif "conversations" in rec:
        msgs = [{"role": _SHAREGPT_ROLES[t["from"]], "content": t["value"]} for t in rec["conversations"]]
    elif "instruction" in rec:
        user = rec["instruction"] + (f"\n\n{rec['input']}" if rec.get("input") else "")
        msgs = ([{"role": "system", "content": rec["system"]}] if rec.get("system") else []) + [
            {"role": "user", "content": user}, {"role": "assistant", "content": rec["output"]}]
    else:
        raise SnapshotError(f"{where}: record has none of messages/conversations/instruction (format {fmt})")
    if not any(m["role"] == "assistant" for m in msgs):
        raise SnapshotError(f"{where}: record has no assistant turn to learn from")
    return {"id": rec.get("id", where), "task": rec.get("task", "unknown"), "meta": meta,
            "messages": [{"role": m["role"], "content": m["content"]} for m in msgs]}


def render(tokenizer, messages: list[dict], enable_thinking: bool = False, **kw: Any) -> str:
    """The base model's own chat template. `enable_thinking` only matters to templates that read it (Qwen3)."""
    return tokenizer.apply_chat_template(messages, tokenize=False, enable_thinking=enable_thinking, **kw)


def assistant_spans(text: str, messages: list[dict], end_markers: list[str]) -> list[tuple[int, int]]:
    """Character spans of each assistant turn's content plus the template's end-of-turn marker.

    The whole conversation is rendered once and each message's content found in order, so templates
    that re-render earlier turns differently (Qwen3 drops old thinking blocks) still line up.
    """
    spans, cursor = [], 0
    for m in messages:
        content = m["content"].strip()
        start = text.find(content, cursor)
        if start < 0:
            raise SnapshotError(f"the chat template did not reproduce a {m['role']} turn verbatim "
                                f"({content[:40]!r}…); pick a base model whose template keeps message text")
        end = start + len(content)
        if m["role"] == "assistant":
            marker = next((s for s in end_markers if text.startswith(s, end)), "")
            spans.append((start, end + len(marker)))
        cursor = end
    return spans


def end_markers(tokenizer) -> list[str]:
    """Special tokens that may close a turn (<|im_end|>, <|eot_id|>, </s>, …), longest first."""
    specials = set(tokenizer.all_special_tokens) | {t.content for t in tokenizer.added_tokens_decoder.values()
                                                    if getattr(t, "special", False)}
    return sorted((s for s in specials if s), key=len, reverse=True)


@dataclass
class Encoded:
    id: str
    input_ids: list[int]
    labels: list[int]
    task: str = ""
    n_label: int = field(init=False)

    def __post_init__(self) -> None:
        self.n_label = sum(1 for x in self.labels if x != IGNORE)


def encode(tokenizer, example: dict, max_length: int, enable_thinking: bool = False,
           markers: list[str] | None = None) -> Encoded | None:
    """Tokens of the rendered conversation; labels copy the ids on assistant spans and are IGNORE elsewhere.

    Returns None when cutting to max_length leaves no assistant token (nothing to learn).
    """
    text = render(tokenizer, example["messages"], enable_thinking)
    spans = assistant_spans(text, example["messages"], markers if markers is not None else end_markers(tokenizer))
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, labels = enc["input_ids"], []
    for tok, (s, _e) in zip(ids, enc["offset_mapping"]):
        inside = any(a <= s < b for a, b in spans)
        labels.append(tok if inside else IGNORE)
    ids, labels = ids[:max_length], labels[:max_length]
    out = Encoded(example["id"], ids, labels, example.get("task", ""))
    return out if out.n_label else None


def micro_batches(examples: list[Encoded], batch_size: int, seed: int, rank: int = 0,
                  world: int = 1) -> list[list[Encoded]]:
    """Shuffled groups of `batch_size` examples; this process's share when `world` > 1.

    Each rank gets the same number of groups (the tail that does not divide evenly is dropped) so
    DDP's gradient all-reduce never waits on a rank that has run out.
    """
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    groups = [[examples[i] for i in order[j:j + batch_size]] for j in range(0, len(order), batch_size)]
    per_rank = len(groups) // world if world > 1 else len(groups)
    return groups[rank::world][:per_rank]


def pack(group: list[Encoded]) -> dict[str, list[int]]:
    """Concatenate a micro-batch into one row with per-example position ids.

    Position ids restart at 0 for each example; transformers reads those restarts as sequence
    boundaries and builds a block-diagonal attention mask, so no example attends to another and no
    token is padding. The first label of every example is masked so the loss never predicts across
    a boundary.
    """
    ids, labels, pos = [], [], []
    for ex in group:
        ids += ex.input_ids
        labels += [IGNORE] + ex.labels[1:]
        pos += list(range(len(ex.input_ids)))
    return {"input_ids": ids, "labels": labels, "position_ids": pos}


def iter_windows(groups: list[list[Encoded]], accumulation: int) -> Iterator[list[list[Encoded]]]:
    """Micro-batches grouped into one optimizer step each."""
    for i in range(0, len(groups), accumulation):
        yield groups[i:i + accumulation]
