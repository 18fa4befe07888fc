"""How much of the answer the chunk supports: character n-gram overlap, which needs no Chinese word segmentation."""

from __future__ import annotations

from functools import lru_cache

from stillroom.curate.scorers import SCORERS, ItemView, Score, Scorer
from stillroom.curate.scorers._grams import overlaps
from stillroom.curate.scorers._text import gram_size, ngrams, normalise, sentences

_SOURCE_SIZES = (2, 4)  # a Chinese answer (bigrams) and an English one (4-grams) check against the same set
_ALL_SUPPORTED = 0.95   # above this, no sentence is listed as unsupported


@lru_cache(maxsize=1024)
def _source_grams(source: str) -> frozenset[str]:
    """Cached because a chunk usually has several items."""
    return frozenset().union(*(ngrams(source, n) for n in _SOURCE_SIZES))


@SCORERS.register("grounding")
class Grounding(Scorer):
    version = 1

    def score(self, item: ItemView) -> Score | None:
        if item.source is None or item.source_missing:
            return None  # numeric_fidelity already fails an item whose chunk is gone
        source = _source_grams(item.source)
        answer = item.answer_grams(gram_size(item.assistant_text))
        if not answer:
            return Score(0.0, {"overlap": 0.0, "unsupported": []})
        overlap = len(answer & source) / len(answer)
        unsupported = []
        # A sentence far below the threshold drags the whole answer down with it: skip the per-sentence pass
        # for answers that are nearly all supported (most of them, and the pass costs as much as the rest).
        for sentence in sentences(item.assistant_text) if overlap < _ALL_SUPPORTED else ():
            grams = ngrams(sentence)
            if len(grams) >= 4 and len(grams & source) / len(grams) < self.settings.grounding_unsupported_below:
                unsupported.append(sentence[:200])
        return Score(overlap, {"overlap": round(overlap, 4), "unsupported": unsupported[:5]})

    def score_many(self, items: list[ItemView]) -> list[Score | None]:
        """The same overlaps for a page in one numpy pass: answers and their sentences against their chunks."""
        todo = [i for i, item in enumerate(items) if item.source is not None and not item.source_missing]
        sources: dict[str, int] = {}
        chunk = [sources.setdefault(items[i].source, len(sources)) for i in todo]
        texts = [items[i].assistant_text for i in todo]
        # Sentences are needed only for answers below _ALL_SUPPORTED, unknown yet: splitting all costs less
        # than a second pass over the chunks.
        parts = [(k, s) for k, t in enumerate(texts) for s in sentences(t)]
        probes = [items[i].assistant_normalised for i in todo] + [normalise(s) for _, s in parts]
        sizes = [gram_size(t) for t in texts] + [gram_size(g) for g in probes[len(texts):]]
        target = chunk + [chunk[k] for k, _ in parts]
        wanted: list[set[int]] = [set() for _ in sources]  # only the gram sizes some probe of the chunk uses
        for t, n, g in zip(target, sizes, probes):
            wanted[t].add(n)
            if len(g) < n:  # a probe shorter than its gram size is one gram, which may be a chunk's bigram
                wanted[t].add(2)
        try:
            counts, hits = overlaps(probes, sizes, [normalise(s) for s in sources], [tuple(w) for w in wanted],
                                    target)
        except OverflowError:  # a text with tens of thousands of distinct characters: one at a time
            return super().score_many(items)
        counts, hits = counts.tolist(), hits.tolist()
        below, m = self.settings.grounding_unsupported_below, len(texts)
        unsupported: dict[int, list[str]] = {}
        for (k, sentence), n, h in zip(parts, counts[m:], hits[m:]):
            if n >= 4 and h / n < below and counts[k] and hits[k] / counts[k] < _ALL_SUPPORTED:
                unsupported.setdefault(k, []).append(sentence[:200])
        out: list[Score | None] = [None] * len(items)
        for k, (i, n, h) in enumerate(zip(todo, counts[:m], hits[:m])):
            if not n:
                out[i] = Score(0.0, {"overlap": 0.0, "unsupported": []})
                continue
            overlap = h / n
            out[i] = Score(overlap, {"overlap": round(overlap, 4), "unsupported": unsupported.get(k, [])[:5]})
        return out
