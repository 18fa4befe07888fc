"""Sentence and safe-break finding for Chinese and English that never cuts inside a figure."""

from __future__ import annotations

import re

# Chinese terminal punctuation ends a sentence outright; English . ! ? only before whitespace,
# so "3.5", "30,000" and "2024.03.01" never split. Closing quotes/brackets stay with their sentence.
_SENTENCE_END = re.compile(r"[。！？；…]+[”’」』）)\]]*|[.!?;]+[\"'”’)\]]*(?=\s)|\n")
# Weaker break points for a sentence longer than the whole budget: commas and spaces not between digits.
_SOFT_BREAK = re.compile(r"(?<!\d)[，,、：:]|[，、；](?=\D)|(?<=[^\d\s])\s+(?=[^\d\s])")


def sentence_spans(text: str, base: int = 0) -> list[tuple[int, int]]:
    """Spans of sentences in `text`, each including its terminal punctuation; whitespace between is skipped."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        _add(text, start, m.end(), base, spans)
        start = m.end()
    _add(text, start, len(text), base, spans)
    return spans


def _add(text: str, start: int, end: int, base: int, spans: list[tuple[int, int]]) -> None:
    piece = text[start:end]
    lead = len(piece) - len(piece.lstrip())
    trail = len(piece) - len(piece.rstrip())
    if piece.strip():
        spans.append((base + start + lead, base + end - trail))


def soft_breaks(text: str) -> list[int]:
    """Offsets after which `text` may be cut when a single sentence exceeds the budget."""
    return [m.end() for m in _SOFT_BREAK.finditer(text)]
