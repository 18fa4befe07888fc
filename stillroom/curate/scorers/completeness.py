"""Not cut off, and about what was asked: the question's key terms (or the task's key points) appear in the answer."""

from __future__ import annotations

import re

import numpy as np

from stillroom.curate.scorers import SCORERS, ItemView, Score, Scorer
from stillroom.curate.scorers._grams import overlaps
from stillroom.curate.scorers._text import Page, contains_any, gram_size, ngrams, normalise, shared_page

_CLOSED = re.compile(r"[。！？.!?…”』」）)\]}>`*|\d%]\s*$")
# Grams made of question words say nothing about what was asked; subtracting a set is far cheaper than a regex.
_QUESTION_GRAMS = frozenset(
    g for w in ("什么", "多少", "哪些", "哪个", "哪里", "如何", "怎么", "怎样", "为什么", "是否", "是不是", "吗", "呢",
                "请问", "根据", "可以", "需要", "what", "which", "when", "where", "how many", "how much", "does the",
                "is the", "are the", "what is the", "of the")
    for g in ngrams(w, 2) | ngrams(w, 4))
_EXCLUDED = sorted(_QUESTION_GRAMS)
_MARKS = ("`", "{", "}", "[", "]")  # what `_unbalanced` counts


@SCORERS.register("completeness")
class Completeness(Scorer):
    version = 1

    def score(self, item: ItemView) -> Score | None:
        answer = item.assistant_text.strip()
        if not answer:
            return Score(0.0, {"problems": ["empty answer"]})
        if item.meta.get("key_points"):
            return self._key_points(item, answer)
        n = gram_size(item.question)
        terms = ngrams(item.question, n) - _QUESTION_GRAMS
        return _score(self._truncated(item, answer), len(terms), len(terms & item.answer_grams(n)))

    def score_many(self, items: list[ItemView]) -> list[Score | None]:
        """The question-term coverage of a page in one numpy pass; key points and empty answers item by item."""
        out: list[Score | None] = [None] * len(items)
        todo, answers = [], []
        for i, item in enumerate(items):
            answer = item.assistant_text.strip()
            if item.meta.get("key_points") or not answer:
                out[i] = self.score(item)
            else:
                todo.append(i)
                answers.append(answer)
        questions = Page([items[i].question for i in todo])
        page = shared_page([item.assistant_text for item in items])  # grounding's too
        sizes, each = np.where(questions.has_cjk(), 2, 4), np.arange(len(todo))
        answer_texts = page.normalised(page.start[todo], page.end[todo])
        try:
            terms, hits, _, _ = overlaps(questions.normalised(), sizes, answer_texts, (each, sizes), each,
                                         exclude=_EXCLUDED)
        except OverflowError:  # a text with tens of thousands of distinct characters: one at a time
            return super().score_many(items)
        seen: dict[tuple, Score] = {}  # equal outcomes share one (never mutated) Score
        marked = contains_any(answers, _MARKS)
        for i, answer, t, h, m in zip(todo, answers, terms.tolist(), hits.tolist(), marked):
            key = (self._truncated(items[i], answer, m), t, h)
            if (score := seen.get(key)) is None:
                score = seen[key] = _score(*key)
            out[i] = score
        return out

    def _truncated(self, item: ItemView, answer: str, marked: bool = True) -> bool:
        # A short answer may end without a full stop ("500元"); a long one that stops mid-word was cut off.
        # `answer` is stripped, so only its last character can end it (searching the whole text costs far more).
        # Only an answer with one of _MARKS (`marked`) can be unbalanced.
        return (item.meta.get("finish_reason") == "length" or marked and _unbalanced(answer)
                or (len(answer) > 120 and not _CLOSED.search(answer[-1:])))

    def _key_points(self, item: ItemView, answer: str) -> Score:
        truncated = self._truncated(item, answer)
        points = item.meta["key_points"]
        hits = [p for p in points if _covered(str(p), answer)]
        coverage = len(hits) / len(points)
        missed = [p for p in points if p not in hits]
        problems = ["answer looks cut off"] if truncated else []
        if missed:
            problems.append(f"key points not addressed: {missed[:5]}")
        return _value(truncated, coverage, problems)


def _score(truncated: bool, n_terms: int, n_hits: int) -> Score:
    coverage = n_hits / n_terms if n_terms else 1.0
    coverage = min(1.0, coverage * 2)  # an answer rarely repeats the whole question; half its terms is plenty
    problems = ["answer looks cut off"] if truncated else []
    if coverage < 0.5:
        problems.append("few of the question's key terms are addressed")
    return _value(truncated, coverage, problems)


def _value(truncated: bool, coverage: float, problems: list[str]) -> Score:
    value = (0.3 if truncated else 1.0) * (0.4 + 0.6 * coverage)
    return Score(value, {"truncated": truncated, "coverage": round(coverage, 3), "problems": problems})


def _covered(point: str, answer: str) -> bool:
    grams = ngrams(point)
    return normalise(point) in normalise(answer) or bool(grams) and len(grams & ngrams(answer)) / len(grams) >= 0.6


def _unbalanced(text: str) -> bool:
    return text.count("```") % 2 == 1 or text.count("{") != text.count("}") or text.count("[") != text.count("]")
