"""Figures in text and whether an answer's figures are in its source — the check that keeps invented numbers out.

A figure is an amount, count, percentage, date, time or range, normalised so that the ways people write
the same quantity compare equal: 30000元 = 30,000元 = 3万元 = 三万元; 5% = 百分之五 = 5 percent;
十五日 = 15日; 2024年3月1日 = 2024-03-01 = March 1, 2024; $15 million = $15,000,000; five thousand = 5,000.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from stillroom.curate.numerals import (
    CN_DIGITS, EN_WORDS, MONTHS, SCALES, STRONG_UNITS, UNITS, parse_cn, parse_en, unit_of,
)
from stillroom.curate.scorers._text import FOLDS_TO_ASCII


# Not frozen: a frozen dataclass sets each field through object.__setattr__, several times the cost of building
# one, and a million items make a few million figures. Nothing here changes a figure once made.
@dataclass(slots=True)
class Figure:
    start: int
    end: int
    text: str
    kind: str                  # number, range, date, time
    value: float | tuple       # number: float; range: (lo, hi); date: (y, m, d) with None parts; time: (h, m)
    unit: str | None = None    # canonical: CNY, USD, %, day, month, year, person… (None: any)
    weak: bool = field(default=False, compare=False, repr=False)  # may be a word (一般, one of): dropped unless in a range


@dataclass(slots=True)
class FigureMatch:
    figure: Figure
    source_span: tuple[int, int] | None  # where the source says it; None = not in source
    source_text: str | None = None

    @property
    def found(self) -> bool:
        return self.source_span is not None


def _alt(words) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_MON = r"(?i:" + _alt(MONTHS) + r")\.?"
_CN_NUM = "[零〇一二两三四五六七八九十百千万亿]+(?:点[零〇一二三四五六七八九]+)?"
_AR = r"(?<![\d.])(?:\d{1,3}(?:[,，]\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?![\d])"
_EN = r"\b(?:" + _alt(EN_WORDS) + r")(?:(?:[\s-]+|\s+and\s+)(?:" + _alt(EN_WORDS) + r"))*\b"
_CUR = r"(?:US\$|HK\$|\$|¥|￥|€|£|(?:USD|RMB|CNY|EUR|GBP|HKD)\s*|人民币)"
_SCALE = r"(?:\s*(?:千万|百万|万|亿|千(?![米克瓦]))|\s*(?i:thousand|million|billion|trillion|bn|mn)\b|[kKmM]\b)"
_CN_UNITS = [u for u in UNITS if not u.isascii() and u not in ("¥", "￥", "€", "£", "人民币")]
_EN_UNITS = [u for u in UNITS if u.isascii() and u[0].isalpha()]
_UNIT = (r"(?:\s*(?:" + _alt(_CN_UNITS) + r"|%|‰)|\s*(?i:" + "|".join(
    re.escape(u).replace(r"\ ", r"\s+") for u in sorted(_EN_UNITS, key=len, reverse=True)) + r")\b)")
_CN_DAY = r"\d{1,2}|[一二三四五六七八九十]{1,3}"

_ALTERNATIVES = (
    r"(?P<iso>(?<!\d)(?P<iy>\d{4})\s*([-/.])\s*(?P<im>\d{1,2})\s*\3\s*(?P<id>\d{1,2})(?!\d))",
    r"(?P<us>(?<!\d)(?P<um>\d{1,2})/(?P<ud>\d{1,2})/(?P<uy>\d{4})(?!\d))",
    r"(?P<cn>(?:(?P<cy>\d{4}|[〇零一二三四五六七八九]{4})\s*年\s*)?(?P<cm>" + _CN_DAY + r")\s*月(?:份)?"
    r"(?:\s*(?P<cd>" + _CN_DAY + r")\s*[日号])?)",
    r"(?P<en1>\b(?P<e1m>" + _MON + r")\s+(?P<e1d>\d{1,2})(?:st|nd|rd|th)?\b(?:,?\s+(?P<e1y>\d{4})\b)?)",
    r"(?P<en2>\b(?P<e2d>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<e2m>" + _MON + r"),?(?:\s+(?P<e2y>\d{4})\b)?)",
    r"(?P<en3>\b(?P<e3m>" + _MON + r"),?\s+(?P<e3y>\d{4})\b)",
    r"(?P<year>(?<!\d)(?P<yy>(?:19|20)\d{2}|[〇零一二][〇零一二三四五六七八九]{3})\s*年(?![\d度]))",
    r"(?P<time>(?<![\d.])(?P<th>\d{1,2})\s*[:：]\s*(?P<tm>\d{2})(?!\d))",
    r"(?P<num>(?P<cur>" + _CUR + r")?(?P<pre>百分之|千分之|第)?"
    r"(?P<n>" + _AR + "|" + _CN_NUM + "|(?i:" + _EN + r"))(?P<scale>" + _SCALE + r")?(?P<unit>" + _UNIT + r")?)",
)
_GRAMMAR = re.compile("|".join(_ALTERNATIVES))
# The same grammar for a match that starts with no letter: the two dates that open with a month's name cannot match
# there, and trying their two dozen names at every digit was a third of the time a chunk's figures took.
_GRAMMAR_NO_LETTER = re.compile("|".join(a for a in _ALTERNATIVES if not a.startswith(("(?P<en1>", "(?P<en3>"))))
_GRAMMAR_NUM = re.compile(_ALTERNATIVES[-1])
_GRAMMAR_CN = re.compile("|".join(a for a in _ALTERNATIVES if a.startswith(("(?P<cn>", "(?P<year>", "(?P<num>"))))
# The grammar to try at a figure's first character, where that character rules alternatives out: only an amount
# starts with 第, a currency sign or 两百千万亿; a Chinese date or year may start with 〇零一…十. Others: by letter.
_BY_FIRST = {**dict.fromkeys("第$¥￥€£人两百千万亿", _GRAMMAR_NUM), **dict.fromkeys("〇零一二三四五六七八九十", _GRAMMAR_CN),
             **dict.fromkeys("0123456789", _GRAMMAR_NO_LETTER)}
# Where a figure can start. Without an ASCII letter (or a character case-insensitive matching takes for one:
# ı ſ K İ) only the alternatives without letters can match; that shorter pattern scans most Chinese answers
# several times faster.
_ANCHOR_NO_LATIN_TEXT = r"[\d零〇一二两三四五六七八九十百千万亿$¥￥€£第]|人民币"
_ANCHOR = re.compile(_ANCHOR_NO_LATIN_TEXT + r"|US\$|HK\$|USD|RMB|CNY|EUR|GBP|HKD|"
                     r"(?i:\b(?:" + _alt([*EN_WORDS, *MONTHS]) + r"))")
_ANCHOR_NO_LATIN = re.compile(_ANCHOR_NO_LATIN_TEXT)
_LATIN = re.compile("[A-Za-z" + "".join(FOLDS_TO_ASCII) + "]")
_SCALE_WORD = re.compile(r"千万|百万|万|亿|(?i:\b(?:thousand|million|billion|trillion)\b)")
# What may stand between a range's two ends, spaces aside (str.strip and the regex \s take the same spaces).
_RANGE_SEPS = frozenset("-–—~～至到") | {"to", "and"}
_LIST_MARK = re.compile(r"(?:^|[\n；;。，,：:]|\s)\s*[(（\[]?$")


def _cn_or_ar(s: str | None) -> int | None:
    if not s:
        return None
    v = float(s) if s.isdigit() else parse_cn(s)
    return int(v) if v is not None else None


def _date(m: re.Match, y: str, mo: str, d: str | None, month_name: bool = False) -> Figure | None:
    year = _cn_or_ar(m.group(y)) if y else None
    raw_month = m.group(mo)
    month = MONTHS.get(raw_month.lower().rstrip(".")) if month_name else _cn_or_ar(raw_month)
    day = _cn_or_ar(m.group(d)) if d else None
    if month is None or not 1 <= month <= 12 or (day is not None and not 1 <= day <= 31):
        return None
    return Figure(m.start(), m.end(), m.group(), "date", (year, month, day))


_CONTEXT = object()  # a parse that depends on the text around the match (a bare number that may be a list marker)
_MISSING = object()
_parsed: dict[bool, dict[str, object]] = {True: {}, False: {}}  # by strict, then by matched text


def _number(m: re.Match, text: str, strict: bool) -> Figure | None:
    """A "num" match as a Figure. The parse is a function of the matched text alone (its groups fall out of it)
    except for a bare number, which may number a list: the rest are memoised by text, as figures repeat."""
    matched = m.group()
    memo = _parsed[strict]
    hit = memo.get(matched, _MISSING)
    if hit is _MISSING:
        hit = _number_parsed(m, text, strict)
        if len(memo) >= 100_000:
            memo.clear()
        memo[matched] = hit
    if hit is None:
        return None
    if hit is _CONTEXT:
        return _number_figure(m, text, strict)
    offset, kind, value, unit, weak = hit
    start, end = m.span()
    return Figure(start + offset, end, matched[offset:] if offset else matched, kind, value, unit, weak)


def _number_parsed(m: re.Match, text: str, strict: bool) -> tuple | None | object:
    """What `_number_figure` gives, relative to the match (start offset, kind, value, unit, weak), or _CONTEXT."""
    n, pre, scale = m.group("n"), m.group("pre"), m.group("scale")
    if strict and n[0].isdigit() and not (pre or scale or m.group("unit")):
        return _CONTEXT  # `_is_list_marker` reads the characters around it
    f = _number_figure(m, text, strict)
    return None if f is None else (f.start - m.start(), f.kind, f.value, f.unit, f.weak)


def _number_figure(m: re.Match, text: str, strict: bool) -> Figure | None:
    n, pre = m.group("n"), m.group("pre") or ""
    if n[0].isdigit():
        value = float(n.replace(",", "").replace("，", ""))
        wordy = False
    else:
        value = parse_cn(n) if n[0] in "零〇一二两三四五六七八九十百千万亿" else parse_en(n)
        wordy = True
    if value is None:
        return None
    scale = (m.group("scale") or "").strip()
    if scale in ("M", "m") and not m.group("cur"):
        return None if wordy else Figure(m.start("n"), m.end(), text[m.start("n"):m.end()], "number", _key(value), "m")
    value *= SCALES.get(scale.lower(), SCALES.get(scale, 1.0))
    unit = unit_of(m.group("unit")) or unit_of((m.group("cur") or "").strip())
    if pre == "百分之":
        unit = "%"
    elif pre == "千分之":
        unit = "‰"
    if unit == "‰":
        value, unit = value / 10, "%"
    # 第三，… / 第2点 number the answer's own points; 第三条 (with a unit) cites the source and is kept
    weak = strict and ((wordy and _weak(n, value, unit, pre, scale)) or (pre == "第" and unit is None))
    if strict and not (wordy or unit or scale or pre) and _is_list_marker(text, m.start("n"), m.end("n"), value):
        return None
    start = m.start() if m.group("cur") or pre else m.start("n")
    return Figure(start, m.end(), text[start:m.end()], "number", _key(value), unit, weak)


def _weak(n: str, value: float, unit: str | None, pre: str, scale: str) -> bool:
    """一般, 万一, 千万, 十分, "one of": numeral characters that are words, not quantities."""
    if n[0].isascii():
        single = " " not in n.strip() and "-" not in n
        return (value <= 1 and unit not in STRONG_UNITS and not scale) or (single and value < 10 and not unit and not scale)
    if not any(c in CN_DIGITS for c in n) and n[0] != "十":
        return True  # 千万 ("by all means"), 万 alone
    if value in (1, 2) and len(n) == 1 and unit not in STRONG_UNITS and pre != "百分之":
        return True  # 一个 / 两者 / 一致 — too common as words to check
    return len(n) == 1 and unit is None and not pre and not scale


def _is_list_marker(text: str, start: int, end: int, value: float) -> bool:
    """"1. " / "(2)" / "3、" at the start of a line numbers the answer's own points, not the source's."""
    if value > 30 or value != int(value):
        return False
    after = text[end:end + 1]
    return bool(_LIST_MARK.search(text[max(0, start - 3):start])) and after in (".", "、", ")", "）", "]", ":")


def _small(v: float) -> bool:
    return v < 100 and v == int(v)


def _key(v: float) -> float:
    return float(f"{v:.12g}")


def _merge_ranges(text: str, figs: list[Figure]) -> list[Figure]:
    """3-5天, 3至5万元, 3%–5%, between 3 and 5 years: one range; the low end borrows the high end's unit/scale."""
    if len(figs) < 2:
        return figs
    out: list[Figure] = []
    i = 0
    while i < len(figs):
        a = figs[i]
        b = figs[i + 1] if i + 1 < len(figs) else None
        if (b is not None and a.kind == b.kind == "number"
                and (sep := text[a.end:b.start].strip().lower()) in _RANGE_SEPS
                and (a.unit is None or b.unit is None or a.unit == b.unit)):
            if sep != "and" or text[max(0, a.start - 8):a.start].lower().strip().endswith("between"):
                lo = a.value
                scale = _SCALE_WORD.search(b.text)
                if scale and not _SCALE_WORD.search(a.text):  # 3-5万: the low end carries the scale too
                    lo = _key(lo * SCALES[scale.group().lower()])
                out.append(Figure(a.start, b.end, text[a.start:b.end], "range", (lo, b.value), b.unit or a.unit))
                i += 2
                continue
        out.append(a)
        i += 1
    return out


def _matches(text: str):
    """_GRAMMAR.finditer, but tried only where a figure can start: the grammar is long, most text is not."""
    pos = 0
    latin = _LATIN.search(text) is not None
    search = (_ANCHOR if latin else _ANCHOR_NO_LATIN).search
    by_first = _BY_FIRST.get
    while anchor := search(text, pos):
        at = anchor.start()
        grammar = by_first(text[at])
        if grammar is None:
            grammar = _GRAMMAR if latin and _LATIN.match(text, at) else _GRAMMAR_NO_LETTER
        m = grammar.match(text, at)
        if m is None or m.end() == at:
            pos = at + 1
            continue
        yield m
        pos = m.end()


def find_figures(text: str, strict: bool = True) -> list[Figure]:
    """Every figure in `text`, in order. strict=False (for sources) also keeps numerals that may be words."""
    figs: list[Figure] = []
    for m in _matches(text or ""):
        kind = m.lastgroup
        if kind == "iso":
            f = _date(m, "iy", "im", "id")
        elif kind == "us":
            f = _date(m, "uy", "um", "ud")
        elif kind == "cn":
            f = _date(m, "cy", "cm", "cd")
        elif kind in ("en1", "en2", "en3"):
            k = kind[-1]
            f = _date(m, f"e{k}y", f"e{k}m", f"e{k}d" if k != "3" else None, month_name=True)
        elif kind == "year":
            y = _cn_or_ar(m.group("yy"))
            f = Figure(m.start(), m.end(), m.group(), "date", (y, None, None)) if y else None
        elif kind == "time":
            h, mi = int(m.group("th")), int(m.group("tm"))
            f = Figure(m.start(), m.end(), m.group(), "time", (h, mi)) if h < 24 and mi < 60 else None
        else:
            f = _number(m, text, strict)
        if f is not None:
            figs.append(f)
    return [f for f in _merge_ranges(text, figs) if not f.weak]


class SourceIndex:
    """A source's figures, indexed once so that many answers over the same chunk check cheaply."""

    def __init__(self, source: str) -> None:
        self.figures = find_figures(source, strict=False)
        self.numbers: dict[float, list[tuple[str | None, Figure]]] = {}
        self.ranges: dict[tuple, Figure] = {}
        self.dates: list[Figure] = []
        self.times: dict[tuple, Figure] = {}
        add = self.numbers.setdefault  # inlined: a chunk's index is built once per five items or so
        for f in self.figures:
            kind = f.kind
            if kind == "number":
                add(f.value, []).append((f.unit, f))
            elif kind == "range":
                self.ranges[(f.value, f.unit)] = f
                add(f.value[0], []).append((f.unit, f))
                add(f.value[1], []).append((f.unit, f))
            elif kind == "date":
                self.dates.append(f)
                y, mo, d = f.value
                for v, unit in ((y, "year"), (mo, "month"), (d, "day")):
                    if v is not None:
                        add(float(v), []).append((unit, f))
            else:
                self.times[f.value] = f

    def number(self, value: float, unit: str | None, dates: bool = True) -> Figure | None:
        """A source figure stating `value` in `unit`. A bare source number supports a unit only when it is
        not small: "clause 4" must not vouch for "4 days", but a table cell "30000" may for "30000元"."""
        for src_unit, f in self.numbers.get(value, ()):
            if not dates and f.kind == "date":
                continue
            if unit is None or src_unit == unit or (src_unit is None and not _small(value)):
                return f
        return None

    def find(self, fig: Figure) -> Figure | tuple[Figure, Figure] | None:
        if fig.kind == "number":
            return self.number(fig.value, fig.unit)
        if fig.kind == "range":
            for unit in {fig.unit, None}:
                if (fig.value, unit) in self.ranges:
                    return self.ranges[(fig.value, unit)]
            lo, hi = self.number(fig.value[0], fig.unit, False), self.number(fig.value[1], fig.unit, False)
            return (lo, hi) if lo and hi else None
        if fig.kind == "date":
            for d in self.dates:
                if all(a is None or a == b for a, b in zip(fig.value, d.value)):
                    return d
            y, mo, day = fig.value
            return self.number(float(y), None) if mo is None and day is None and y is not None else None
        return self.times.get(fig.value)


@lru_cache(maxsize=4096)
def source_index(source: str) -> SourceIndex:
    return SourceIndex(source)


def match_figures(answer: str, source: str) -> list[FigureMatch]:
    """Each figure of `answer` with the span of `source` that states it, or no span: "not in source". The source's
    figures are indexed only for an answer that has some (many answers state no figure at all)."""
    figures = find_figures(answer)
    if not figures:
        return []
    index = source_index(source or "")
    out = []
    for fig in figures:
        hit = index.find(fig)
        if hit is None:
            out.append(FigureMatch(fig, None))
            continue
        parts = hit if isinstance(hit, tuple) else (hit,)
        start, end = min(p.start for p in parts), max(p.end for p in parts)
        out.append(FigureMatch(fig, (start, end), source[start:end]))
    return out
