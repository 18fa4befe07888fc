"""Numeric fidelity accuracy on a labelled Chinese/English set: recall of altered figures, false flags on faithful answers.

    python bench/curate_accuracy.py [--n 2000] [--seed 1] [--show 5]

Each case is a source sentence set and an answer restating some of its figures in another written form
(30000元 ↔ 3万元 ↔ 三万元, 5% ↔ 百分之五, 十五日 ↔ 15日, 2024年3月1日 ↔ 2024-03-01, $15 million ↔ $15,000,000,
65 percent ↔ 65%, five thousand ↔ 5,000, ranges). Altered answers change exactly one figure (a digit, a scale,
a day, a unit). Targets: recall ≥ 0.99, false-flag rate ≤ 0.01.
"""

from __future__ import annotations

import argparse
import random

from stillroom.curate.numbers import match_figures

CN = "零一二三四五六七八九"
EN_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen " \
          "seventeen eighteen nineteen".split()
EN_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
MONTHS = "January February March April May June July August September October November December".split()


def cn_num(n: int) -> str:
    """Chinese numerals for 0 < n < 10^8: 三万五千, 十五, 一百零五."""
    if n >= 10_000:
        hi, lo = divmod(n, 10_000)
        return cn_num(hi) + "万" + (("零" if lo < 1000 else "") + cn_num(lo) if lo else "")
    out, zero = "", False
    for unit, name in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        d, n = divmod(n, unit)
        if d:
            out += ("零" if zero and out else "") + ("" if (unit == 10 and d == 1 and not out) else CN[d]) + name
            zero = False
        elif out:
            zero = True
    return out


def en_num(n: int) -> str:
    if n < 20:
        return EN_ONES[n]
    if n < 100:
        return EN_TENS[n // 10] + ("-" + EN_ONES[n % 10] if n % 10 else "")
    if n < 1000:
        return EN_ONES[n // 100] + " hundred" + (" " + en_num(n % 100) if n % 100 else "")
    hi, lo = divmod(n, 1000)
    return en_num(hi) + " thousand" + (" " + en_num(lo) if lo else "")


# Each fact kind: (zh renderings, en renderings) of a value; a rendering may return None when it does not apply.
def cny(v):
    return [f"{v}元", f"{v:,}元", f"{v // 10000}万元" if v % 10000 == 0 else None, cn_num(v) + "元",
            f"人民币{v:,}元"], [f"{v:,} yuan", f"RMB {v:,}", f"¥{v:,}"]


def pct(v):
    return [f"{v}%", f"百分之{cn_num(v)}"], [f"{v}%", f"{v} percent", f"{en_num(v)} percent", f"{v} per cent"]


def days(v):
    return [f"{v}日", f"{cn_num(v)}日", f"{v}天", f"{cn_num(v)}天"], [f"{v} days", f"{en_num(v)} days"]


def date(v):
    y, m, d = v
    return [f"{y}年{m}月{d}日", f"{y}-{m:02d}-{d:02d}", f"{y}/{m}/{d}"], \
        [f"{MONTHS[m - 1]} {d}, {y}", f"{d} {MONTHS[m - 1]} {y}", f"{y}-{m:02d}-{d:02d}"]


def usd(v):
    m = f"{v / 1e6:g}"
    return [f"{v:,}美元", f"{v / 1e4:g}万美元"], \
        [f"${m} million", f"${v:,}", f"USD {m} million", f"{m} million dollars", f"US${m}M"]


def count(v):
    return [f"{v:,}人", f"{v}人", cn_num(v) + "人", f"{v / 10000:g}万人" if v >= 10000 else None], \
        [f"{v:,} people", f"{en_num(v)} people" if v < 100_000 else None, f"{v} employees"]


def span(v):
    lo, hi = v
    return [f"{lo}-{hi}天", f"{lo}至{hi}天", f"{cn_num(lo)}至{cn_num(hi)}天"], \
        [f"{lo}-{hi} days", f"{lo} to {hi} days", f"between {lo} and {hi} days"]


KINDS = {
    "cny": (cny, lambda r: r.choice([500, 800, 1200, 3000, 30000, 50000, 120000, 2500])),
    "pct": (pct, lambda r: r.choice([3, 5, 8, 10, 15, 20, 25, 30, 65, 80])),
    "days": (days, lambda r: r.choice([3, 5, 7, 10, 15, 20, 30, 45, 60, 90])),
    "date": (date, lambda r: (r.choice([2022, 2023, 2024, 2025]), r.randint(1, 12), r.randint(1, 28))),
    "usd": (usd, lambda r: r.choice([2, 5, 15, 40, 120]) * 1_000_000),
    "count": (count, lambda r: r.choice([12, 50, 300, 1500, 5000, 20000])),
    "span": (span, lambda r: (lambda lo: (lo, lo + r.choice([2, 3, 5])))(r.randint(2, 10))),
}
SUBJECTS_ZH = ["住宿费上限", "逾期扣减比例", "提交期限", "施行日期", "项目预算", "参训人数", "审批周期", "交通补贴", "违约金比例"]
SUBJECTS_EN = ["the lodging cap", "the late penalty", "the filing window", "the effective date", "the project budget",
               "the headcount", "the review period", "the travel allowance"]


WRAP_ZH = ["{}", "一般来说，{}", "根据本办法第二条的规定，{}", "{}这一点十分重要，务必统一执行。", "总的来说，有以下几点：{}",
           "{}以上规定一律适用，千万不要逾期。", "第一，{}第二，请按时提交材料。"]
WRAP_EN = ["{}", "In short: {}", "Under clause 2, {}", "{} This is one of the key rules.", "There are a few points. {}"]


def alter(kind: str, v, r: random.Random):
    """One changed figure, as a model that invents numbers would change it."""
    if kind == "date":
        y, m, d = v
        return r.choice([(y + 1, m, d), (y, m % 12 + 1, d), (y, m, d % 28 + 1)])
    if kind == "span":
        lo, hi = v
        return r.choice([(lo + 1, hi), (lo, hi + 1), (lo, hi * 2)])
    return r.choice([v * 10, v + max(1, v // 5), v * 2, max(1, v - max(1, v // 4))])


def render(kind: str, v, lang: str, r: random.Random, avoid: str | None = None) -> str:
    zh, en = KINDS[kind][0](v)
    options = [x for x in (zh if lang == "zh" else en) if x and x != avoid]
    return r.choice(options or [x for x in (zh if lang == "zh" else en) if x])


def case(r: random.Random, altered: bool):
    lang = r.choice(["zh", "en"])
    kinds = r.sample(list(KINDS), r.randint(2, 4))
    values = {k: KINDS[k][1](r) for k in kinds}
    subjects = r.sample(SUBJECTS_ZH if lang == "zh" else SUBJECTS_EN, len(kinds))
    src_forms = {k: render(k, values[k], lang, r) for k in kinds}
    if lang == "zh":
        source = "".join(f"根据本办法第{cn_num(i + 2)}条，{s}为{src_forms[k]}。" for i, (s, k) in enumerate(zip(subjects, kinds)))
    else:
        source = " ".join(f"Under clause {i + 2}, {s} is {src_forms[k]}." for i, (s, k) in enumerate(zip(subjects, kinds)))
    told = r.sample(kinds, r.randint(1, len(kinds)))
    target = r.choice(told) if altered else None
    parts = []
    for k in told:
        v = alter(k, values[k], r) if k == target else values[k]
        form = render(k, v, lang, r, avoid=src_forms[k])
        s = subjects[kinds.index(k)]
        parts.append(f"{s}是{form}" if lang == "zh" else f"{s[0].upper() + s[1:] if not parts else s} is {form}")
    if r.random() < 0.3:  # answers number their points: the markers are not figures
        parts = [f"{i + 1}. {p}" for i, p in enumerate(parts)]
        answer = "\n".join(parts)
    else:
        answer = ("；".join(parts) + "。") if lang == "zh" else (("; ".join(parts)) + ".")
    # …and wrap them in the phrases models use, full of numeral characters that are words
    answer = r.choice(WRAP_ZH if lang == "zh" else WRAP_EN).format(answer)
    return source, answer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000, help="cases of each label")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--show", type=int, default=5, help="misjudged cases to print")
    args = ap.parse_args()
    r = random.Random(args.seed)
    misses, false_flags = [], []
    for altered in (True, False):
        for _ in range(args.n):
            source, answer = case(r, altered)
            flagged = [m.figure.text for m in match_figures(answer, source) if not m.found]
            if altered and not flagged:
                misses.append((source, answer))
            elif not altered and flagged:
                false_flags.append((source, answer, flagged))
    recall = 1 - len(misses) / args.n
    false_rate = len(false_flags) / args.n
    print(f"altered figures caught (recall): {recall:.4f}  (target >= 0.99, {args.n} altered answers)")
    print(f"faithful answers flagged:        {false_rate:.4f}  (target <= 0.01, {args.n} faithful answers)")
    for s, a in misses[:args.show]:
        print("MISSED  ", a, " | source:", s)
    for s, a, f in false_flags[:args.show]:
        print("FLAGGED ", f, a, " | source:", s)


if __name__ == "__main__":
    main()
