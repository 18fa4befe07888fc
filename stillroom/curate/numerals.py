"""Numerals and units as people write them: 三万五千, 一千二, twenty-five thousand, 30,000, 万元, yuan.

Kept apart from numbers.py so the figure grammar there reads as a grammar, and the tables here can
grow (a new currency, a new unit word) without touching it.
"""

from __future__ import annotations

CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
CN_SMALL = {"十": 10, "百": 100, "千": 1000}
CN_BIG = {"万": 10_000, "亿": 100_000_000}

EN_ONES = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
EN_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
EN_SCALES = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}
EN_WORDS = [*EN_ONES, *EN_TENS, "hundred", *EN_SCALES]

# A scale written after a figure: 3万, 1.2亿, 15 million, $15M.
SCALES = {
    "千万": 1e7, "百万": 1e6, "万": 1e4, "亿": 1e8, "千": 1e3,
    "thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12, "bn": 1e9, "mn": 1e6, "k": 1e3, "m": 1e6,
}

# Surface form → canonical unit. None means "a measure word that says nothing about the quantity"
# (个, 件, 项…): such a figure matches the same number with any unit in the source.
UNITS: dict[str, str | None] = {
    "元": "CNY", "块": "CNY", "人民币": "CNY", "rmb": "CNY", "cny": "CNY", "¥": "CNY", "￥": "CNY", "yuan": "CNY",
    "$": "USD", "us$": "USD", "usd": "USD", "美元": "USD", "dollars": "USD", "dollar": "USD",
    "€": "EUR", "eur": "EUR", "欧元": "EUR", "euros": "EUR", "euro": "EUR",
    "£": "GBP", "gbp": "GBP", "英镑": "GBP", "hk$": "HKD", "hkd": "HKD", "港元": "HKD", "港币": "HKD", "日元": "JPY",
    "%": "%", "％": "%", "percent": "%", "per cent": "%", "pct": "%", "‰": "‰",
    "天": "day", "日": "day", "号": "day", "自然日": "day", "个自然日": "day", "days": "day", "day": "day",
    "工作日": "workday", "个工作日": "workday", "working days": "workday", "business days": "workday",
    "working day": "workday", "business day": "workday",
    "个月": "month", "months": "month", "month": "month",
    "周": "week", "个星期": "week", "星期": "week", "weeks": "week", "week": "week",
    "年": "year", "周年": "year", "years": "year", "year": "year",
    "小时": "hour", "个小时": "hour", "hours": "hour", "hour": "hour",
    "分钟": "minute", "minutes": "minute", "minute": "minute", "秒": "second", "seconds": "second",
    "岁": "age", "周岁": "age", "years old": "age",
    "人": "person", "名": "person", "位": "person", "people": "person", "persons": "person", "employees": "person",
    "倍": "multiple", "次": "times",
    "公里": "km", "千米": "km", "km": "km", "米": "m", "公斤": "kg", "千克": "kg", "kg": "kg", "克": "g", "吨": "t",
    "平方米": "m2", "㎡": "m2", "亩": "mu",
    "条": "article", "款": "clause", "章": "chapter", "节": "section",
    "个": None, "件": None, "项": None, "份": None, "张": None, "家": None, "台": None, "辆": None, "套": None,
}
# Units strong enough that 一 / 两 / "one" before them is a quantity and not a turn of phrase (一般, one of).
STRONG_UNITS = {"CNY", "USD", "EUR", "GBP", "HKD", "JPY", "%", "‰", "day", "workday", "month", "week", "year",
                "hour", "minute", "multiple"}
MONTHS = {m: i for i, names in enumerate(
    [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",), ("jun", "june"),
     ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
     ("dec", "december")], start=1) for m in names}


def parse_cn(s: str) -> float | None:
    """三万五千 → 35000, 十五 → 15, 二〇二四 → 2024, 一千二 → 1200, 三点五 → 3.5; None if not a numeral."""
    if "点" in s:
        whole, _, frac = s.partition("点")
        w = parse_cn(whole) if whole else 0
        if w is None or not frac or any(c not in CN_DIGITS for c in frac):
            return None
        return w + float("0." + "".join(str(CN_DIGITS[c]) for c in frac))
    if s and all(c in CN_DIGITS for c in s):
        return float("".join(str(CN_DIGITS[c]) for c in s)) if len(s) > 1 else float(CN_DIGITS[s])
    total, section, num, last_unit = 0.0, 0.0, 0, 0
    for c in s:
        if c in CN_DIGITS:
            num = CN_DIGITS[c]
        elif c in CN_SMALL:
            section += (num or 1) * CN_SMALL[c]
            num, last_unit = 0, CN_SMALL[c]
        elif c == "万":
            total += (section + num) * CN_BIG[c]
            section, num, last_unit = 0, 0, CN_BIG[c]
        elif c == "亿":
            total = (total + section + num) * CN_BIG[c]
            section, num, last_unit = 0, 0, CN_BIG[c]
        else:
            return None
    if num and last_unit >= 100 and s[-2] not in CN_DIGITS:  # 一千二 = 1200, 三万五 = 35000
        num *= last_unit // 10
    return total + section + num


def parse_en(s: str) -> float | None:
    """twenty-five thousand → 25000, one hundred and twenty → 120; None if a word is not a number word."""
    total, current = 0.0, 0.0
    for word in s.lower().replace("-", " ").split():
        if word == "and":
            continue
        if word in EN_ONES:
            current += EN_ONES[word]
        elif word in EN_TENS:
            current += EN_TENS[word]
        elif word == "hundred":
            current = (current or 1) * 100
        elif word in EN_SCALES:
            total += (current or 1) * EN_SCALES[word]
            current = 0
        else:
            return None
    return total + current


def unit_of(surface: str | None) -> str | None:
    if not surface:
        return None
    s = " ".join(surface.strip().lower().split())
    return UNITS.get(s, UNITS.get(s.rstrip(".")))
