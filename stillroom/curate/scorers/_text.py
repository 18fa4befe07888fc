"""Text helpers the scorers share: language by script, character n-grams that work without word segmentation."""

from __future__ import annotations

import re

# CJK Unified Ideographs (with Extension A) and the Compatibility Ideographs: the regexes and `language_many`'s
# numpy mask are both built from these.
_CJK_RANGES = ((0x3400, 0x9FFF), (0xF900, 0xFAFF))
_CJK_CLASS = "[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _CJK_RANGES) + "]"
_CJK = re.compile(_CJK_CLASS)
_CJK_RUN = re.compile(_CJK_CLASS + "+")
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


def language_many(texts: list[str]) -> list[str | None]:
    """`language` of each text, counted for the whole list at once in numpy (CJK characters and runs of
    two or more ASCII letters, as the regexes above count them)."""
    import numpy as np

    if not texts:
        return []
    # A separator between texts (not a letter, not CJK) keeps a run of letters from crossing into the next text.
    cps = np.frombuffer("\0".join(texts).encode("utf-32-le"), np.uint32)
    cjk = np.zeros(len(cps), bool)
    for lo, hi in _CJK_RANGES:
        cjk |= (cps >= lo) & (cps <= hi)
    letter = ((cps >= 65) & (cps <= 90)) | ((cps >= 97) & (cps <= 122))
    word = np.zeros(len(cps), bool)  # the first letter of a run of at least two
    word[:-1] = letter[:-1] & letter[1:]
    word[1:] &= ~letter[:-1]
    lens = np.fromiter(map(len, texts), np.int64, len(texts))
    starts = np.concatenate(([0], np.cumsum(lens + 1)[:-1]))
    ends = starts + lens
    c_cjk, c_word = np.concatenate(([0], np.cumsum(cjk))), np.concatenate(([0], np.cumsum(word)))
    n_cjk = (c_cjk[ends] - c_cjk[starts]).tolist()
    n_word = (c_word[ends] - c_word[starts]).tolist()
    return [None if c + w < 2 else "zh" if c >= w else "en" for c, w in zip(n_cjk, n_word)]


# Characters that Python's case-insensitive matching takes for an ASCII letter (ı, ſ, the Kelvin sign, İ):
# a text with one of them may match where its `lower()` shows no literal, so it always goes to the regex.
FOLDS_TO_ASCII = ("\u0131", "\u017f", "\u212a", "\u0130")


def may_contain(texts: list[str], literals: tuple[str, ...]) -> list[bool]:
    """For each text: could it contain one of `literals` (lower case), ignoring case? False is certain, so a
    regex that cannot match without one of them need not run on that text. One substring search per literal
    over the whole list, not one per text."""
    out = [False] * len(texts)
    _mark(texts, FOLDS_TO_ASCII, out)
    _mark([t.lower() for t in texts], literals, out)
    return out


def _mark(texts: list[str], needles: tuple[str, ...], out: list[bool]) -> None:
    from bisect import bisect_right
    from itertools import accumulate

    joined = "\0".join(texts)  # no needle holds a NUL, so none can match across two texts
    starts = list(accumulate((len(t) + 1 for t in texts), initial=0))
    for needle in needles:
        at = joined.find(needle)
        while at >= 0:
            k = bisect_right(starts, at) - 1
            out[k] = True
            at = joined.find(needle, starts[k + 1])
