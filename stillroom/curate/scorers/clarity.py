"""The question stands on its own (a trained model never sees "the passage"), is a real question, and has a sensible length."""

from __future__ import annotations

import re

from stillroom.curate.scorers import SCORERS, ItemView, Score, Scorer
from stillroom.curate.scorers._text import may_contain

_CONTEXT_BOUND = re.compile(
    r"(?i)上文|下文|本文|文中|原文|该文档|本文档|这份文档|此文档|这篇文章|该文章|以上材料|上述材料|根据材料|材料中|文段|段落中|"
    r"根据(?:以上|上述|所给|提供的)|这段(?:话|文字)|\b(?:this|the|above|following|given|provided) "
    r"(?:document|passage|text|article|excerpt|context|paragraph|material)\b|\baccording to the (?:text|passage|document)\b")
_ASKS = re.compile(
    r"(?i)[?？]\s*$|什么|多少|哪|如何|怎么|怎样|为什么|为何|是否|是不是|吗|几|请|列出|说明|解释|描述|简述|概括|比较|计算|"
    r"^(?:what|which|who|whom|whose|when|where|why|how|is|are|was|were|do|does|did|can|could|should|would|will|"
    r"list|explain|describe|summari[sz]e|compare|calculate|give|name|state|outline)\b")


# A question with none of these (lower-cased) cannot match _CONTEXT_BOUND: `score_many` runs it only on the others.
_BOUND_WORDS = ("上文", "下文", "本文", "文中", "原文", "文档", "文章", "材料", "文段", "段落中", "根据以上", "根据上述", "根据所给",
                "根据提供的", "这段", "document", "passage", "text", "article", "excerpt", "context", "paragraph",
                "material")
# A question ending in a question mark or holding one of these matches _ASKS; a case-sensitive search for the
# words alone is several times faster than _ASKS.
_ASKS_WORDS = re.compile("什么|多少|哪|如何|怎么|怎样|为什么|为何|是否|是不是|吗|几|请|列出|说明|解释|描述|简述|概括|比较|计算")


@SCORERS.register("clarity")
class Clarity(Scorer):
    version = 1

    def score(self, item: ItemView) -> Score | None:
        return self._judge((item.question or "").strip())

    def score_many(self, items: list[ItemView]) -> list[Score | None]:
        questions = [(item.question or "").strip() for item in items]
        return [self._judge(q, b) for q, b in zip(questions, may_contain(questions, _BOUND_WORDS))]

    def _judge(self, q: str, maybe_bound: bool = True) -> Score:
        problems = []
        if maybe_bound and (bound := _CONTEXT_BOUND.search(q)):
            problems.append(f"refers to a context the model will not see: {bound.group()!r}")
        if not (q.endswith(("?", "？")) or _ASKS_WORDS.search(q) or _ASKS.search(q)):
            problems.append("not phrased as a question or request")
        if len(q) < self.settings.question_min_chars:
            problems.append(f"shorter than {self.settings.question_min_chars} characters")
        if len(q) > self.settings.question_max_chars:
            problems.append(f"longer than {self.settings.question_max_chars} characters")
        if not problems:
            return _CLEAR
        penalties = {1: 0.5, 2: 0.25}
        return Score(penalties.get(len(problems), 0.0), {"problems": problems})


_CLEAR = Score(1.0, {"problems": []})  # shared by every clear question: never mutated
