"""Which sentences of the source chunk support the answer: those sharing the most character n-grams with it.

Character n-grams (the scorers' own: bigrams for Chinese, 4-grams otherwise, case and punctuation
ignored) work without word segmentation and need no model; sentences are ingest's (so "3.5" stays
whole). Sentences are picked greedily, each for the answer n-grams it adds that earlier picks did not
cover, so a two-part answer marks both sentences.
"""

from __future__ import annotations

from functools import lru_cache

from stillroom.curate.scorers._text import gram_size, ngrams
from stillroom.ingest.sentences import sentence_spans

MAX_SENTENCES = 3
FIRST_MIN = 0.25  # share of the answer's n-grams the best sentence must hold, or nothing is marked
NEXT_MIN = 0.15  # share each further sentence must add


def support_spans(source: str, answer: str) -> list[tuple[int, int]]:
    """The (start, end) spans of the source sentences that best support `answer`, in text order."""
    n = gram_size(answer)  # a Chinese answer's bigrams are matched against the source's bigrams, even in English text
    wanted = ngrams(answer, n)
    if not wanted:
        return []
    sentences = list(_sentence_grams(source, n))
    picked: list[tuple[int, int]] = []
    left = set(wanted)
    while sentences and len(picked) < MAX_SENTENCES:
        span, grams = max(sentences, key=lambda s: (len(s[1] & left), -s[0][0]))
        gain = len(grams & left) / len(wanted)
        if gain < (NEXT_MIN if picked else FIRST_MIN):
            break
        picked.append(span)
        left -= grams
        sentences = [s for s in sentences if s[0] != span]
    return sorted(picked)


@lru_cache(maxsize=256)
def _sentence_grams(source: str, n: int) -> tuple[tuple[tuple[int, int], frozenset[str]], ...]:
    """Each sentence's span and n-grams; a batch of views shares them (distill asks several questions per chunk)."""
    return tuple((span, frozenset(ngrams(source[span[0]:span[1]], n))) for span in sentence_spans(source))
