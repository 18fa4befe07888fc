"""A refusal or filler where an answer was expected ("作为一个AI…", "I cannot…"), or an answer where a refusal was."""

from __future__ import annotations

import re

from stillroom.curate.scorers import SCORERS, ItemView, Score, Scorer
from stillroom.curate.scorers._text import may_contain

_REFUSAL = re.compile(
    r"(?i)作为一个?(?:AI|人工智能|语言模型)|我(?:无法|不能|没有办法)(?:回答|提供|确定|判断)|抱歉|对不起|"
    r"(?:根据|基于)(?:所|已)?提供的(?:信息|资料|内容|材料)(?:，|,)?(?:无法|不能)|(?:文中|材料中|资料中|原文)(?:并)?(?:未|没有)(?:提及|提到|说明)|"
    r"无法(?:从.{0,10})?(?:确定|得知|回答)|\bas an ai\b|\bi(?:'m| am)? (?:cannot|can't|can not|unable to)\b|"
    r"\bi'?m sorry\b|\bi apologi[sz]e\b|\b(?:is|are) not (?:mentioned|provided|specified|stated) in the\b|"
    r"\bno information (?:is )?(?:provided|available|given)\b")
_FILLER = re.compile(
    r"(?i)希望(?:这|以上)?(?:对你|对您|能)有(?:所)?帮助|如(?:果)?(?:你|您)?(?:还)?有(?:其他|任何)(?:问题|疑问)|好问题|"
    r"\bhope (?:this|that) helps\b|\bgreat question\b|\bfeel free to ask\b|\blet me know if\b")
# A match of each regex holds one of these (lower-cased): a text with none of them skips the regexes.
_REFUSAL_WORDS = ("作为", "我不能", "我没有办法", "无法", "抱歉", "对不起", "提供的", "未提及", "未提到", "未说明", "没有提及",
                  "没有提到", "没有说明", "as an ai", "cannot", "can't", "can not", "unable to", "m sorry", "apologi",
                  "not mentioned in the", "not provided in the", "not specified in the", "not stated in the",
                  "no information")
_FILLER_WORDS = ("帮助", "有其他", "有任何", "好问题", "helps", "great question", "feel free to ask", "let me know if")


@SCORERS.register("refusal")
class Refusal(Scorer):
    version = 1

    def score(self, item: ItemView) -> Score | None:
        text = item.assistant_text
        refusal = _REFUSAL.search(text)
        if item.meta.get("refusal"):
            if refusal:
                return Score(1.0, {"expected_refusal": True, "refusal": refusal.group()})
            return Score(0.0, {"expected_refusal": True, "problem": "answered where a refusal was expected"}, True)
        if refusal:
            return Score(0.0, {"refusal": refusal.group()}, hard_fail=True)
        if filler := _FILLER.search(text):
            return Score(0.7, {"filler": filler.group()})
        return Score(1.0, {})

    def score_many(self, items: list[ItemView]) -> list[Score | None]:
        texts = [item.assistant_text for item in items]
        suspect = may_contain(texts, _REFUSAL_WORDS + _FILLER_WORDS)
        plain = Score(1.0, {})  # shared by the items with no refusal and no filler: never mutated
        return [self.score(item) if s or item.meta.get("refusal") else plain for item, s in zip(items, suspect)]
