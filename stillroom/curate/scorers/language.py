"""The answer is in the language the task asked for (or the question's language when the setting is 'auto')."""

from __future__ import annotations

from stillroom.curate.scorers import SCORERS, ItemView, Score, Scorer
from stillroom.curate.scorers._text import language, language_many


@SCORERS.register("language")
class Language(Scorer):
    version = 1

    def score(self, item: ItemView) -> Score | None:
        wanted = item.meta.get("language") or self.settings.answer_language
        if wanted == "auto":
            wanted = language(item.question)
        return _judge(wanted, language(item.assistant_text))

    def score_many(self, items: list[ItemView]) -> list[Score | None]:
        """Both languages of a page counted at once; equal outcomes share one (never mutated) Score."""
        wanted = [item.meta.get("language") or self.settings.answer_language for item in items]
        auto = [i for i, w in enumerate(wanted) if w == "auto"]
        for i, lang in zip(auto, language_many([items[i].question for i in auto])):
            wanted[i] = lang
        seen: dict[tuple, Score | None] = {}
        out = []
        for w, got in zip(wanted, language_many([item.assistant_text for item in items])):
            key = (w, got) if w is None or isinstance(w, str) else None  # meta may hold anything
            if key is None:
                out.append(_judge(w, got))
                continue
            if key not in seen:
                seen[key] = _judge(w, got)
            out.append(seen[key])
        return out


def _judge(wanted: str | None, got: str | None) -> Score | None:
    if wanted not in ("zh", "en") or got is None:
        return None  # too little text, or a language we cannot tell apart by script
    if got == wanted:
        return Score(1.0, {"expected": wanted, "detected": got})
    return Score(0.0, {"expected": wanted, "detected": got}, hard_fail=True)
