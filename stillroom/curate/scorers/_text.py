"""Text helpers the scorers share: language by script, character n-grams that work without word segmentation,
and `Page`: normalising, splitting and sizing a whole page of texts at once, in numpy."""

from __future__ import annotations

import re
from functools import cached_property

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


# `normalise`, `gram_size` and `sentences` for a whole page at once, in numpy. A table over all code points
# (filled in as characters are first seen, once per process) holds what `normalise` makes of each character on
# its own (the low 21 bits: the character it keeps, or 0) and what the splitting and `gram_size` ask of it.
_CODE = (1 << 21) - 1
_SPACE, _BREAK, _DOT, _HAN, _HAN_KEPT, _CONTEXT = (1 << b for b in range(21, 27))
_SIGMA = 0x3A3  # lower() makes it "ς" or "σ" by its neighbours: a text with one is normalised on its own
_table = None


class Page:
    """A list of texts as one array of code points; a span is [first, end) of the texts joined."""

    def __init__(self, texts: list[str]) -> None:
        import numpy as np

        self.texts, self.joined = texts, "".join(texts)
        self.cps = np.frombuffer(self.joined.encode("utf-32-le"), np.uint32)
        self.flags = _flags(self.cps)
        length = np.fromiter(map(len, texts), np.int64, len(texts))
        self.end = np.cumsum(length)
        self.start = self.end - length

    def has_cjk(self, first=None, end=None, normalised: bool = False) -> "np.ndarray":
        """For each text (or span): does it, or its `normalise`, have a CJK character (`gram_size` 2)?"""
        flags = self._text_flags if first is None else self._or(first, end)
        return (flags & (_HAN_KEPT if normalised else _HAN)) != 0

    def context(self) -> "np.ndarray":
        """For each text: does `normalise` make one of its characters by its neighbours (not one by one)?"""
        return (self._text_flags & _CONTEXT) != 0

    def normalised(self, first=None, end=None) -> "Texts":
        """`normalise` of each text (or span), as code points."""
        import numpy as np

        from stillroom.curate.scorers._grams import Texts

        first, end = self._spans(first, end)
        codes, dropped, odd = self._kept
        at = first - np.searchsorted(dropped, first)  # where each span starts among the characters kept
        length = end - np.searchsorted(dropped, end) - at
        if len(odd):  # spans in a text with a character that depends on its neighbours, on their own after the rest
            spans = np.flatnonzero(np.isin(np.searchsorted(self.end, first, "right"), odd))
            alone = [np.frombuffer(normalise(self.joined[first[i]:end[i]]).encode("utf-32-le"), np.uint32)
                     for i in spans.tolist()]
            length[spans] = [len(x) for x in alone]
            at[spans] = len(codes) + np.cumsum(length[spans]) - length[spans]
            codes = np.concatenate([codes] + alone)
        return Texts(codes, at, length)

    @cached_property
    def _kept(self) -> tuple["np.ndarray", "np.ndarray", "np.ndarray"]:
        """The characters `normalise` keeps, one by one, and the positions of those it drops (all of a text whose
        characters depend on their neighbours: those texts are listed third)."""
        import numpy as np

        code = self.flags & _CODE
        keep = code != 0
        odd = np.flatnonzero(self._text_flags & _CONTEXT)
        for k in odd.tolist():
            keep[self.start[k]:self.end[k]] = False
        return code[keep].view(np.uint32), np.flatnonzero(~keep), odd

    def sentences(self) -> tuple["np.ndarray", "np.ndarray", "np.ndarray"]:
        """`sentences` of every text: the text each belongs to, and their spans."""
        import numpy as np

        from stillroom.curate.scorers._grams import sorted_unique

        marked = np.flatnonzero(self.flags & (_SPACE | _BREAK | _DOT))
        kind = self.flags[marked]
        space = marked[(kind & _SPACE) != 0]
        dots = marked[(kind & _DOT) != 0]
        # a sentence ends after a break character, after a "." and a space (which `strip` then drops), and at the
        # end of its text
        ends = np.concatenate((marked[(kind & _BREAK) != 0], dots[_within(dots + 1, space)],
                               self.end[self.end > self.start] - 1))
        ends = sorted_unique(ends) + 1
        first = np.concatenate(([0], ends[:-1]))[:len(ends)]
        # strip: past a run of spaces at the start, back over one at the end
        run = np.ones(len(space), bool)
        run[1:] = space[1:] != space[:-1] + 1
        run_first, run_end = space[run], np.append(space[:-1][run[1:]], space[-1:]) + 1
        lead = _within(first, space)
        first[lead] = run_end[np.searchsorted(run_first, first[lead], "right") - 1]
        trail = _within(ends - 1, space)
        ends[trail] = run_first[np.searchsorted(run_first, ends[trail] - 1, "right") - 1]
        solid = first < ends
        first, ends = first[solid], ends[solid]
        return np.searchsorted(self.end, first, "right"), first, ends

    def _spans(self, first, end):
        return (self.start, self.end) if first is None else (first, end)

    @cached_property
    def _text_flags(self) -> "np.ndarray":
        return self._or(self.start, self.end)

    def _or(self, first, end) -> "np.ndarray":
        """The flags of each span's characters, or-ed together."""
        import numpy as np

        at = np.empty(2 * len(first), np.int64)  # every other segment is a span
        at[0::2], at[1::2] = first, end
        out = np.bitwise_or.reduceat(np.append(self.flags, 0), at)[0::2] if len(at) else np.zeros(0, np.int32)
        out[end <= first] = 0  # reduceat gives an empty segment's first element
        return out


_shared: tuple[list[str], Page] | None = None


def shared_page(texts: list[str]) -> Page:
    """The Page of `texts`, the last one built again when the texts are the same (the scorers of a page of items
    share their answers' Page)."""
    global _shared
    last = _shared
    if last is not None and last[0] == texts:
        return last[1]
    page = Page(texts)
    _shared = (list(texts), page)
    return page


def _within(values: "np.ndarray", sorted_values: "np.ndarray") -> "np.ndarray":
    """Which of `values` are in `sorted_values`."""
    import numpy as np

    if not len(sorted_values):
        return np.zeros(len(values), bool)
    pos = np.minimum(np.searchsorted(sorted_values, values), len(sorted_values) - 1)
    return sorted_values[pos] == values


def _flags(cps: "np.ndarray") -> "np.ndarray":
    """The table's entry for each code point, filling in characters not seen before."""
    import numpy as np

    global _table
    if _table is None:
        _table = np.full(0x110000, -1, np.int32)
    flags = _table.take(cps, mode="clip")  # faster than indexing; every code point is in the table
    if (flags < 0).any():
        new = np.zeros(len(_table), bool)  # numpy's `unique` hashes: slower on a first page's million characters
        new.put(cps[flags < 0], True, mode="clip")
        for c in np.flatnonzero(new).tolist():
            ch = chr(c)
            alone = normalise(ch)
            entry = _CONTEXT if c == _SIGMA or len(alone) > 1 else ord(alone) if alone else 0
            entry |= _SPACE if ch.isspace() else 0
            entry |= _BREAK if ch in "。！？!?；;\n" else _DOT if ch == "." else 0
            entry |= _HAN if _CJK.match(ch) else 0
            entry |= _HAN_KEPT if _CJK.search(alone) else 0
            _table[c] = entry
        flags = _table.take(cps, mode="clip")
    return flags


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


def contains_any(texts: list[str], needles: tuple[str, ...]) -> list[bool]:
    """For each text: does it contain one of `needles`? One substring search per needle over the whole list."""
    out = [False] * len(texts)
    _mark(texts, needles, out)
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
