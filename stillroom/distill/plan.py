"""Which units a run has to do: one per (chunk, sample), each routed to a task so the target mix is met.

A unit's id is a hash of what defines its output — chunk, task, prompt version, provider/model and
sample index — so planning the same command again finds the same units and resume costs nothing.
A slot (chunk, sample) keeps the task an earlier run gave it, so new chunks never reshuffle old work.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from stillroom.distill.tasks import Chunk, Task
from stillroom.ids import content_id
from stillroom.store import Store


@dataclass(frozen=True)
class Unit:
    id: str
    chunk: Chunk
    task: str
    prompt_hash: str
    provider: str
    model: str
    sample_index: int


def load_chunks(store: Store, limit: int | None = None) -> list[Chunk]:
    """Chunks in reading order (document, then position); `limit` takes the first N."""
    rows = store.query(
        "SELECT c.id, c.text, c.heading_path, d.file_name, c.has_figures, c.n_tokens FROM chunks c "
        "JOIN documents d ON d.id = c.document_id ORDER BY d.file_name, c.document_id, c.seq"
        + (" LIMIT ?" if limit is not None else ""), [limit] if limit is not None else None)
    return [Chunk(*row) for row in rows]


def targets(tasks: dict[str, Task], mix: dict[str, float]) -> dict[str, float]:
    """Each task's share: its `target_mix` entry, the rest split evenly among tasks without one."""
    named = {t: mix[t] for t in tasks if t in mix}
    rest = [t for t in tasks if t not in mix]
    left = max(0.0, 1.0 - sum(named.values()))
    return {t: named.get(t, left / len(rest) if rest else 0.0) for t in tasks}


def assign(chunks: list[Chunk], tasks: dict[str, Task], mix: dict[str, float], samples: int,
           earlier: dict[tuple[str, int], str]) -> list[tuple[Chunk, int, str]]:
    """Route every (chunk, sample) slot to a task, returned in reading order. Chunks with figures go to
    figures-only tasks (numeric_qa, worked_problem) until those reach their share of all slots; every
    other slot goes to the task furthest below its share. Slots are routed in an order that interleaves
    the documents, so the figures-only share is spread over every document rather than spent on the
    first ones (a split by document then holds some in each part). A slot an earlier run routed keeps
    its task."""
    share = targets(tasks, mix)
    quota = {n: math.ceil(share[n] * len(chunks) * samples - 1e-9) for n, t in tasks.items() if t.needs_figures}
    counts: Counter[str] = Counter(t for t in earlier.values() if t in tasks)
    total = sum(counts.values())
    routed: dict[tuple[str, int], str] = {}
    for chunk, s in _interleaved(chunks, samples):
        kept = earlier.get((chunk.id, s))
        if kept in tasks:
            routed[chunk.id, s] = kept
            continue
        fits = [n for n, t in tasks.items() if chunk.has_figures or not t.needs_figures]
        if not fits:
            continue
        total += 1
        scarce = [n for n in fits if n in quota and counts[n] < quota[n]]
        others = [n for n in fits if n not in quota] or fits
        name = scarce[0] if scarce else max(others, key=lambda n: share[n] * total - counts[n])
        counts[name] += 1
        routed[chunk.id, s] = name
    return [(c, s, routed[c.id, s]) for c in chunks for s in range(samples) if (c.id, s) in routed]


def _interleaved(chunks: list[Chunk], samples: int) -> list[tuple[Chunk, int]]:
    """Every slot, ordered by how far through its document it lies (then by document, then sample), so a
    long document is visited evenly alongside short ones. Deterministic: it depends only on the chunks."""
    docs: dict[str, list[Chunk]] = {}
    for chunk in chunks:
        docs.setdefault(chunk.document, []).append(chunk)
    # (i + ½) / n as a float: equal fractions give equal floats, distinct ones (n < 10⁷) distinct floats
    keyed = [((2 * i + 1) / (2 * len(doc)), d, i, chunk)
             for d, doc in enumerate(docs.values()) for i, chunk in enumerate(doc)]
    return [(chunk, s) for *_, chunk in sorted(keyed) for s in range(samples)]  # (position, d, i) is unique


def plan_units(store: Store, tasks: dict[str, Task], mix: dict[str, float], samples: int,
               provider: str, model: str, limit: int | None = None) -> tuple[list[Unit], int]:
    """(units, slots no selected task fits — e.g. numeric_qa alone on a chunk without figures)."""
    chunks = load_chunks(store, limit)
    earlier = {(c, s): t for c, s, t in store.query(
        "SELECT DISTINCT ON (chunk_id, sample_index) chunk_id, sample_index, task FROM work_units "
        "WHERE provider = ? AND model = ? ORDER BY chunk_id, sample_index, updated_at DESC", [provider, model])}
    slots = assign(chunks, tasks, mix, samples, earlier)
    units = []
    for chunk, s, name in slots:
        ph = tasks[name].prompt_hash(chunk)
        uid = content_id("wu", {"chunk": chunk.id, "task": name, "prompt": ph, "provider": provider,
                                "model": model, "sample": s})
        units.append(Unit(uid, chunk, name, ph, provider, model, s))
    return units, len(chunks) * samples - len(slots)


def estimate(units: list[Unit], tasks: dict[str, Task], max_tokens: int) -> dict:
    """Tokens a run would use, before calling anything: prompt characters / 3 in (the few-shot turns
    included), and at most `max_tokens` out per unit (typically far fewer)."""
    tokens_in = sum(sum(len(m["content"]) for m in tasks[u.task].render(u.chunk)) // 3 + 1 for u in units)
    per_task = Counter(u.task for u in units)
    return {"units": len(units), "by_task": dict(per_task), "tokens_in": tokens_in,
            "tokens_out_max": len(units) * max_tokens, "tokens_out_typical": len(units) * min(max_tokens, 400)}
