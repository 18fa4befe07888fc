"""The page-at-a-time scorers (`score_many`, numpy n-grams, prefilters, the vectorised rubric) give exactly what
the per-item `score` and `overall` give, item for item, on deliberately awkward items."""

from __future__ import annotations

import itertools
import json

import pytest

from stillroom.curate import scoring
from stillroom.curate.scorers import SCORERS, ItemView
from stillroom.settings.curate import CurateSettings
from test_curate_scoring_helpers import SOURCE_EN, SOURCE_ZH

QUESTIONS = ["住宿费每晚的报销上限是多少？", "What is the annual limit?", "根据上文，期限是多久", "x", "吗", "what",
             "According to the passage, how many days?", "Explain the policy.", "这份文档说了什么？" * 30, ""]
ANSWERS = ["每晚不超过500元。另外，财务部门负责审核。", "The company reimburses up to $15 million per year.",
           "作为一个AI，我无法回答。", "I'm ſorry, I cannot say.", "I \u212aNOW nothing.", "Hope this helps!",
           "希望对您有帮助！", "ab", "a", "", "   ", "{\"a\": 1}", "The answer is (unbalanced [", "回答很长" * 60,
           "1. 第一点\n2. 第二点：300元", "Der Betrag ist 500 Euro.", "全年累计不超过3万元。自2024年3月1日起施行。",
           "ΑΣ. Claims must be filed within 30 days.", "Ａｂｃ １２３"]
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


def test_a_page_of_score_rows_matches_the_per_item_rubric():
    cfg = CurateSettings()
    scoring._init_worker(cfg)
    items = _items()
    rows = [(i.id, i.revision, i.task, i.question, i.answer, json.dumps(i.messages, ensure_ascii=False),
             json.dumps(i.meta, ensure_ascii=False), "chunk" if i.source is not None or i.source_missing else None,
             i.source) for i in items]
    got = scoring._score_rows(rows).to_pylist()
    want = []
    for row in rows:
        item = scoring.view_from_row(row)
        for name, s in scoring.score_view(item, scoring.load_scorers(cfg), cfg.weights).items():
            want.append({"item_id": item.id, "revision": 0, "scorer": name, "scorer_version": 1, "value": s.value,
                         "hard_fail": s.hard_fail, "evidence": scoring._to_json(s.evidence)})
    assert got == want
