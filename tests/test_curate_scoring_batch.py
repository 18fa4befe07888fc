"""The page-at-a-time scorers (`score_many`, numpy n-grams, prefilters, the vectorised rubric) give exactly what
the per-item `score` and the reference rubric below give, item for item, on deliberately awkward items."""

from __future__ import annotations

import itertools
import json
from re import _constants as sre, _parser as sre_parse

import numpy as np
import pytest

from stillroom.curate import scoring, scoring_batch
from stillroom.curate.scorers import SCORERS, ItemView, Score, clarity, refusal
from stillroom.curate.scorers._text import Page, gram_size, normalise, sentences, shared_page
from stillroom.settings.curate import CurateSettings
from test_curate_scoring_helpers import SOURCE_EN, SOURCE_ZH

QUESTIONS = ["住宿费每晚的报销上限是多少？", "What is the annual limit?", "根据上文，期限是多久", "x", "吗", "what",
             "According to the passage, how many days?", "Explain the policy.", "这份文档说了什么？" * 30, ""]
ANSWERS = ["每晚不超过500元。另外，财务部门负责审核。", "The company reimburses up to $15 million per year.",
           "作为一个AI，我无法回答。", "I'm ſorry, I cannot say.", "I \u212aNOW nothing.", "Hope this helps!",
           "希望对您有帮助！", "ab", "a", "", "   ", "{\"a\": 1}", "The answer is (unbalanced [", "回答很长" * 60,
           "1. 第一点\n2. 第二点：300元", "Der Betrag ist 500 Euro.", "全年累计不超过3万元。自2024年3月1日起施行。",
           "ΑΣ. Claims must be filed within 30 days.", "Ａｂｃ １２３",
           # sentences of another gram size than their answer's, shorter than it, empty, or split by ". "
           "第一句很长。Second sentence here. 第三句也很长。", "好。很好。非常好。", "Ok. Fine! Sure? Yes; no.\n\nEnd",
           " \n 。。 . 每晚500元", "İstanbul  ſtraße \u212aelvin.\u3000第二句。", "A.B. C.D"]
SOURCES = [SOURCE_ZH, SOURCE_EN, None, "ab", "abc", "xaby", ""]
METAS = [{}, {"refusal": True}, {"language": "en"}, {"language": ["odd"]}, {"key_points": ["500元", "每晚"]},
         {"finish_reason": "length"}, {"template": ["## 摘要"]}, {"json_schema": {"type": "object"}}]


def _items() -> list[ItemView]:
    out = []
    for k, (q, a, src) in enumerate(itertools.product(QUESTIONS, ANSWERS, SOURCES)):
        meta = METAS[k % len(METAS)]
        messages = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        if k % 11 == 0:
            messages += [{"role": "user", "content": "还有呢？"}, {"role": "assistant", "content": ANSWERS[k % 7]}]
        out.append(ItemView(id=f"i{k}", task="multiturn" if k % 11 == 0 else "qa", question=q, answer=a,
                            messages=messages, meta=meta, source=src, source_missing=k % 13 == 0 and src is None))
    return out


@pytest.mark.parametrize("name", SCORERS.names())
def test_score_many_gives_what_score_gives(name):
    scorer = SCORERS.get(name)(CurateSettings())
    items = _items()
    assert scorer.score_many(items) == [scorer.score(item) for item in items]


TEXTS = ANSWERS + QUESTIONS + ["", "Σ", "ΌΣΟΣ. ΣΟΦΙΑ", "a\u0307", "\ufa6e\ufa70中", "x_y-z", "\U0002a6d6 汉字", "。\n",
                               "..."]


@pytest.mark.parametrize("texts", [TEXTS, TEXTS[::-1], [t for t in TEXTS if t.isascii()], ["", ""], []])
def test_a_page_normalises_splits_and_sizes_as_the_text_helpers_do(texts):
    """`Page` (numpy, a page at a time) against `normalise`, `sentences` and `gram_size`, text by text."""
    page = Page(texts)
    owner, first, end = page.sentences()
    assert [[page.joined[a:b] for k, a, b in zip(owner, first, end) if k == i] for i in range(len(texts))] == \
        [sentences(t) for t in texts]
    spans = [(page.start[i], page.end[i]) for i in range(len(texts))] + list(zip(first, end))
    got = page.normalised(*(np.array([s[j] for s in spans], np.int64) for j in (0, 1)))
    want = [normalise(page.joined[a:b]) for a, b in spans]
    assert [got.codes[a:a + n].tobytes().decode("utf-32-le") for a, n in zip(got.start, got.length)] == want
    assert page.has_cjk().tolist() == [gram_size(t) == 2 for t in texts]
    assert page.has_cjk(first, end, normalised=True).tolist() == [gram_size(t) == 2 for t in want[len(texts):]]
    assert shared_page(list(texts)) is shared_page(list(texts)) and shared_page(texts + ["x"]).texts[-1:] == ["x"]


@pytest.mark.parametrize("shared", [False, True])
def test_ngram_scorers_split_a_page_whose_alphabet_is_too_wide_for_64_bit_keys(shared):
    """38,000 distinct characters do not fit 4 x 15 bits: the page is split by chunk (disjoint alphabets fit), or
    scored item by item when one chunk alone is too wide."""
    wide = "".join(map(chr, itertools.chain(range(0x3400, 0x4DC0), range(0x4E00, 0x9FA6), range(0xAC00, 0xD7A4))))
    parts = [wide] * 3 if shared else [wide[k * 13_000:(k + 1) * 13_000] for k in range(3)]
    items = [ItemView(id=f"w{k}", task="qa", question=p[k::50][:40] + "？", answer=p[k::7][:300] + "。" + p[:20],
                      messages=[], source=p) for k, p in enumerate(parts)]
    for name in ("grounding", "completeness"):
        scorer = SCORERS.get(name)(CurateSettings())
        assert scorer.score_many(items) == [scorer.score(item) for item in items]


def overall(scores: dict[str, Score], weights: dict[str, float]) -> Score:
    """The rubric, item by item (the reference for `scoring_batch.overall_many`): the weighted mean over the scorers
    that applied; any hard fail makes it 0 (the weighted value is kept)."""
    used = {n: weights.get(n, 0.0) for n in scores if weights.get(n, 0.0) > 0}
    total = num = 0.0
    for n, w in used.items():  # plain left-to-right sums (not `sum`, compensated from Python 3.12), as
        total += w             # `overall_many` adds them
        num += scores[n].value * w
    weighted = num / total if total else 1.0
    hard = sorted(n for n, s in scores.items() if s.hard_fail)
    evidence = {"weighted": round(weighted, 4), "hard_fails": hard, "weights": used}
    return Score(0.0 if hard else weighted, evidence, hard_fail=bool(hard))


def test_a_page_of_score_rows_matches_the_per_item_rubric():
    cfg = CurateSettings()
    scorers = scoring.load_scorers(cfg)
    items = _items()
    rows = [(i.id, i.revision, i.task, i.question, i.answer, json.dumps(i.messages, ensure_ascii=False),
             json.dumps(i.meta, ensure_ascii=False), "chunk" if i.source is not None or i.source_missing else None,
             i.source) for i in items]
    got = scoring_batch.score_rows(rows, scorers, cfg.weights).to_pylist()
    want = []
    for row in rows:
        item = scoring_batch.view_from_row(row)
        scores = {name: s for name, scorer in scorers if (s := scorer.score(item)) is not None}
        scores["overall"] = overall(scores, cfg.weights)
        for name, s in scores.items():
            want.append({"item_id": item.id, "revision": 0, "scorer": name, "scorer_version": 1, "value": s.value,
                         "hard_fail": s.hard_fail, "evidence": scoring_batch.to_json(s.evidence)})
    assert got == want


def _spellings(pattern: list) -> set[str]:
    """Every shortest way a parsed regex can match, with NUL for a character it leaves open (`.`, `\\w`, a wide
    class): no literal holds a NUL, so one spelled across such a character does not count. A bounded repeat is
    spelled at its least count and one more (so `.{0,10}` is both nothing and an open character)."""
    out = {""}
    for op, av in pattern:
        if op is sre.LITERAL:
            opts = {chr(av)}
        elif op is sre.IN:
            opts = set()
            for kind, a in av:
                if kind is sre.LITERAL:
                    opts.add(chr(a))
                elif kind is sre.RANGE and a[1] - a[0] < 64:
                    opts.update(map(chr, range(a[0], a[1] + 1)))
                else:
                    opts.add("\0")
        elif op in (sre.ANY, sre.NOT_LITERAL):
            opts = {"\0"}
        elif op is sre.AT:  # \b, ^, $: no characters
            opts = {""}
        elif op is sre.BRANCH:
            opts = set().union(*(_spellings(b) for b in av[1]))
        elif op is sre.SUBPATTERN:
            opts = _spellings(av[-1])
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
            lo, hi, sub = av
            once, opts = _spellings(sub), set()
            for k in {lo, min(lo + 1, hi)}:
                spelt = {""}
                for _ in range(k):
                    spelt = {a + b for a in spelt for b in once}
                opts |= spelt
        else:
            raise AssertionError(f"no spelling for regex node {op}: extend _spellings")
        out = {a + b for a in out for b in opts}
    return out


@pytest.mark.parametrize("regex, literals", [(refusal._REFUSAL, refusal._REFUSAL_WORDS),
                                             (refusal._FILLER, refusal._FILLER_WORDS),
                                             (clarity._CONTEXT_BOUND, clarity._BOUND_WORDS)],
                         ids=["refusal", "filler", "context_bound"])
def test_every_refusal_and_filler_alternative_holds_a_prefilter_literal(regex, literals):
    """`score_many` runs the regexes only on texts holding one of the literals: a new alternative of a regex
    needs a literal too, or texts matching only it would pass as clean."""
    spellings = _spellings(sre_parse.parse(regex.pattern))
    assert len(spellings) > 20
    assert sorted(s for s in spellings if not any(w in s.lower() for w in literals)) == []


def test_every_shortcut_word_of_a_question_is_an_anywhere_match_of_asks():
    """Clarity takes a question holding one of `_ASKS_WORDS` (or ending in a question mark) as asking without
    running `_ASKS`: each word must match it anywhere in a text."""
    for word in clarity._ASKS_WORDS.pattern.split("|") + ["?", "？"]:
        assert clarity._ASKS.search("a" + word if word in "?？" else "a" + word + "a"), word
