"""Scorers: one small module each, registered in SCORERS. Each gives a value in [0, 1] and its evidence.

A scorer returns None when it does not apply to an item (no source to check against, a language it
cannot judge); the rubric then weighs the scorers that did apply. `hard_fail` marks a defect that no
other score can make up for (a figure not in the source, invalid JSON, a refusal).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from stillroom.curate.scorers._text import ngrams
from stillroom.registry import Registry

SCORERS: Registry[type["Scorer"]] = Registry("scorer", modules=(
    "stillroom.curate.scorers.numeric_fidelity",
    "stillroom.curate.scorers.grounding",
    "stillroom.curate.scorers.completeness",
    "stillroom.curate.scorers.clarity",
    "stillroom.curate.scorers.format",
    "stillroom.curate.scorers.refusal",
    "stillroom.curate.scorers.language",
))


@dataclass
class ItemView:
    """What a scorer sees: the item's current revision and its source chunk."""

    id: str
    task: str
    question: str
    answer: str
    messages: list[dict]
    meta: dict = field(default_factory=dict)
    source: str | None = None         # the chunk text; None when the item never had one
    source_missing: bool = False      # the item names a chunk that is no longer in the store
    revision: int = 0

    @cached_property
    def assistant_text(self) -> str:
        """Every assistant turn: in a multiturn item each one can invent a figure."""
        turns = [m.get("content") or "" for m in self.messages if m.get("role") == "assistant"]
        return "\n".join(turns) if len(turns) > 1 else self.answer

    def answer_grams(self, n: int) -> set[str]:
        """The assistant text's character n-grams, computed once for the scorers that share them."""
        cache = self.__dict__.setdefault("_grams", {})
        if n not in cache:
            cache[n] = ngrams(self.assistant_text, n)
        return cache[n]


@dataclass
class Score:
    value: float
    evidence: Any = None
    hard_fail: bool = False

    def __post_init__(self) -> None:
        self.value = min(1.0, max(0.0, float(self.value)))


class Scorer:
    """Subclass, set `version` (bump it when results change) and implement `score` (and, for speed, `score_many`)."""

    version = 1

    def __init__(self, settings: Any) -> None:
        self.settings = settings  # the [curate] section

    def score(self, item: ItemView) -> Score | None:
        raise NotImplementedError

    def score_many(self, items: list[ItemView]) -> list[Score | None]:
        """A page of items at once. Override with a vectorised version (same results as `score`, item for item)
        where a per-item loop is too slow for a million items."""
        return [self.score(item) for item in items]
