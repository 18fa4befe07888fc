"""Text helpers the scorers share: language by script, character n-grams that work without word segmentation."""

from __future__ import annotations

import re

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_CJK_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)
_SENTENCE = re.compile(r"(?<=[。！？!?；;\n])|(?<=\.)\s+")


def language(text: str) -> str | None:
    """'zh', 'en' or None (too little text to tell). Chinese text with a few English terms stays 'zh'."""
    cjk = sum(map(len, _CJK_RUN.findall(text or "")))  # runs, not characters: a list of one string per run
    words = len(_LATIN_WORD.findall(text or ""))
    if cjk + words < 2:
        return None
    return "zh" if cjk >= words else "en"


def normalise(text: str) -> str:
    return _NOISE.sub("", (text or "").lower())


def gram_size(text: str) -> int:
    """Bigrams for Chinese (two characters are about a word), 4-grams for alphabetic text."""
    return 2 if _CJK.search(text or "") else 4


def ngrams(text: str, n: int | None = None) -> set[str]:
    """Character n-grams of the normalised text (n from `gram_size` unless given)."""
    s = normalise(text)
    n = n or gram_size(s)
    if len(s) <= n:
        return {s} if s else set()
    return {s[i:i + n] for i in range(len(s) - n + 1)}


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text or "") if s and s.strip()]
