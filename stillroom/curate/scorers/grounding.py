"""How much of the answer the chunk supports: character n-gram overlap, which needs no Chinese word segmentation."""

from __future__ import annotations

from functools import lru_cache

from stillroom.curate.scorers import SCORERS, ItemView, Score, Scorer
from stillroom.curate.scorers._text import gram_size, ngrams, sentences


@lru_cache(maxsize=1024)
def _source_grams(source: str) -> frozenset[str]:
    """Both gram sizes, so a Chinese answer (bigrams) and an English one (4-grams) check against the same set;
    cached because a chunk usually has several items."""
    return frozenset(ngrams(source, 2) | ngrams(source, 4))


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
        for sentence in sentences(item.assistant_text) if overlap < 0.95 else ():
            grams = ngrams(sentence)
            if len(grams) >= 4 and len(grams & source) / len(grams) < self.settings.grounding_unsupported_below:
                unsupported.append(sentence[:200])
        return Score(overlap, {"overlap": round(overlap, 4), "unsupported": unsupported[:5]})
