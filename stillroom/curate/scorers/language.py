"""The answer is in the language the task asked for (or the question's language when the setting is 'auto')."""

from __future__ import annotations

from stillroom.curate.scorers import SCORERS, ItemView, Score, Scorer
from stillroom.curate.scorers._text import language


@SCORERS.register("language")
class Language(Scorer):
    version = 1

    def score(self, item: ItemView) -> Score | None:
        wanted = item.meta.get("language") or self.settings.answer_language
        if wanted == "auto":
            wanted = language(item.question)
        got = language(item.assistant_text)
        if wanted not in ("zh", "en") or got is None:
            return None  # too little text, or a language we cannot tell apart by script
        if got == wanted:
            return Score(1.0, {"expected": wanted, "detected": got})
        return Score(0.0, {"expected": wanted, "detected": got}, hard_fail=True)
