"""Which sentences of the source chunk support the answer: those sharing the most character n-grams with it.

Character n-grams work the same for Chinese (no word boundaries) and for English, need no model,
and take well under a millisecond for a chunk. Sentences are picked greedily, each for the answer
n-grams it adds that earlier picks did not cover, so a two-part answer marks both sentences.
"""

from __future__ import annotations

import re
import unicodedata

# Ends of sentences and clauses in Chinese and English text; a line break ends one too.
_BOUNDARY = re.compile(r"[。！？!?；;\n]+|(?<=[.])\s+")
MAX_SENTENCES = 3
FIRST_MIN = 0.25  # share of the answer's n-grams the best sentence must hold, or nothing is marked
NEXT_MIN = 0.15  # share each further sentence must add


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, its end punctuation included, surrounding whitespace left out."""
    spans, start = [], 0
    for m in _BOUNDARY.finditer(text):
        spans.append((start, m.end()))
        start = m.end()
    spans.append((start, len(text)))
    out = []
    for a, b in spans:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            out.append((a, b))
    return out


def _grams(text: str, n: int) -> set[str]:
    chars = "".join(c for c in unicodedata.normalize("NFKC", text).lower() if c.isalnum())
    return {chars[i:i + n] for i in range(len(chars) - n + 1)}


def support_spans(source: str, answer: str) -> list[tuple[int, int]]:
    """The (start, end) spans of the source sentences that best support `answer`, in text order."""
    n = 2 if any("\u4e00" <= c <= "\u9fff" for c in answer) else 3  # a Chinese character carries a word's weight
    wanted = _grams(answer, n)
    if not wanted:
        return []
    sentences = [(span, _grams(source[span[0]:span[1]], n)) for span in sentence_spans(source)]
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
