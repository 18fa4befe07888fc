"""Copy-constrained decoding for the local model: a reply field decoded as a verbatim span of a source text.

At each step the model may only pick a token that continues a span of the source's own token ids,
starting at an allowed start and ending (EOS) at an allowed end. The model still chooses which span —
which sentences answer the question, which figure the answer rests on — but it cannot write a figure
the source lacks. A 135M model left free invents numbers; copying makes its answers grounded by
construction, and curation still judges whether they answer the question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from stillroom.distill.prompts import detect_language
from stillroom.ingest.sentences import sentence_spans

_FIGURE_START = re.compile(r"(?<![0-9０-９.,，])[0-9０-９]|(?<![一二三四五六七八九十百千万两])[一二三四五六七八九十两]"
                           r"(?=[十百千万亿]?[元%％天日月年个人次倍])")
_SECTION_NUMBER = re.compile(r"\d+(\.\d+)*\s+")
_NUMBER = re.compile(r"[0-9０-９一二三四五六七八九十百千万亿两]+(?:[.,][0-9]+)*")
_UNIT = re.compile(r"[%％]|[\u4e00-\u9fff]{1,4}|\s?[A-Za-z]+")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_TERMINAL = set("。！？；….!?;")
_CLOSING = "”’」』）)\"'"
_BULLET = re.compile(r"[-*•·]\s+")


@dataclass
class Spans:
    """A source's token ids and the token positions where a copied span may start and end."""

    ids: list[int]
    starts: set[int]
    ends: set[int]
    offsets: list[tuple[int, int]] = field(default_factory=list)
    final: set[int] | None = None  # ends a span cannot run past (None: every end — it stops at its first)

    @property
    def stops(self) -> set[int]:
        return self.ends if self.final is None else self.final

    @property
    def empty(self) -> bool:
        return not self.starts or not self.ends


def _tokens(tok: Any, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


def _positions(offsets: list[tuple[int, int]], chars: set[int], *, at_end: bool) -> set[int]:
    """Token boundaries at the given character offsets: a start is the first token covering the character,
    an end the boundary after the last token covering the character before it. (A CJK character can take
    several byte-level tokens; a span never starts or ends inside one.)"""
    out = set()
    for p, (a, b) in enumerate(offsets):
        if a == b:
            continue
        if at_end and (p + 1 == len(offsets) or offsets[p + 1][0] >= b) and any(c in chars for c in range(a + 1, b + 1)):
            out.add(p + 1)
        if not at_end and (p == 0 or offsets[p - 1][1] <= a) and any(c in chars for c in range(a, b)):
            out.add(p)
    return out


def sentence_spans_of(tok: Any, source: str, prefer_figures: bool = False, languages: tuple[str, ...] = ()) -> Spans:
    """Spans of one whole sentence each: ending in sentence punctuation (so not a heading or a table row)
    and at least 8 characters long. Preferences narrow the choice where the source allows: with
    `prefer_figures`, sentences that hold a figure; then sentences in one of `languages` ("en", "zh")."""
    ids, offsets = _tokens(tok, source)
    chosen = [(a + _numbering(source, a), b) for a, b in sentence_spans(source)
              if b - a >= 8 and source[a:b].rstrip(_CLOSING)[-1:] in _TERMINAL
              and not source[a:b].lstrip().startswith(("#", "|"))]
    for keep in (lambda a, b: not prefer_figures or bool(_figure_starts(source[a:b])),
                 lambda a, b: not languages or detect_language(source[a:b]) in languages):
        chosen = [(a, b) for a, b in chosen if keep(a, b)] or chosen
    return Spans(ids, _positions(offsets, {a for a, _ in chosen}, at_end=False),
                 _positions(offsets, {b for _, b in chosen}, at_end=True), offsets)


def _numbering(text: str, at: int) -> int:
    """Length of a list marker or section number opening a sentence ("1.2 ", "- "), which an answer leaves out."""
    m = _SECTION_NUMBER.match(text, at) or _BULLET.match(text, at)
    return m.end() - at if m else 0


def _figure_starts(text: str) -> list[int]:
    """Where figures start, leaving out a section number that opens a line ("1.2 Claims ...")."""
    return [m.start() for m in _FIGURE_START.finditer(text) if not _SECTION_NUMBER.match(text, m.start())
            or (m.start() > 0 and text[m.start() - 1] not in "\n")]


def figure_spans_of(tok: Any, text: str) -> Spans:
    """Spans that are a figure: a number (not a section number) alone or with the unit after it — a
    percent sign, one word ("30 days") or one to four CJK characters ("15个工作日"); the model picks which."""
    ids, offsets = _tokens(tok, text)
    starts, ends, final = set(), set(), set()
    for at in _figure_starts(text):
        end = _NUMBER.match(text, at).end()
        starts.add(at)
        ends.add(end)
        if unit := _UNIT.match(text, end):
            ends.update(range(end + 1, unit.end() + 1) if _CJK.match(unit.group()) else [unit.end()])
        final.add(unit.end() if unit else end)
    return Spans(ids, _positions(offsets, starts, at_end=False), _positions(offsets, ends, at_end=True), offsets,
                 final=_positions(offsets, final, at_end=True))


class SpanCopier:
    """A transformers logits processor (batch of one) that keeps generation inside `spans`.

    `last_end` is how many generated tokens form the longest copied span that ended at an allowed
    end, so a reply cut by the token limit can be cut back to it instead of ending mid-sentence."""

    def __init__(self, spans: Spans, eos_id: int, prompt_len: int) -> None:
        self.spans, self.eos_id, self.prompt_len = spans, eos_id, prompt_len
        self.candidates: set[int] = set(spans.starts)
        self.last_end = 0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        generated = input_ids.shape[1] - self.prompt_len
        if generated > 0:
            last = int(input_ids[0, -1])
            self.candidates = {j + 1 for j in self.candidates if j < len(self.spans.ids) and self.spans.ids[j] == last}
            if self.candidates & self.spans.ends:
                self.last_end = generated
        # A candidate at a final end may only stop there (one sentence, one figure with its unit).
        going = self.candidates - self.spans.stops if generated > 0 else self.candidates
        allowed = {self.spans.ids[j] for j in going if j < len(self.spans.ids)}
        if (generated > 0 and self.candidates & self.spans.ends) or not allowed:
            allowed.add(self.eos_id)
        mask = torch.full_like(scores, float("-inf"))
        mask[:, sorted(allowed)] = 0
        return scores + mask


# Words a question may use besides the statement's own: a 135M model left free wanders off the topic
# ("How many claims can be made on a refundable credit card?"); kept to these it asks about the statement.
QUESTION_WORDS = {
    "en": " What How When Where Which Who Why many much long often is are was were do does did can may must "
          "should will would the a an of for in on to by within per at from with and or after before ? ?",
    "zh": "什么多少哪些哪个几吗如何怎样怎么是否需要可以应该最多最少是有的要？",
}


def statement_vocabulary(tok: Any, statement: str) -> set[int]:
    """Token ids a line about `statement` (a question, a figure's meaning) may use: its own tokens (as written, lower-cased, after a
    space), the question words of its language, newline and EOS."""
    words = QUESTION_WORDS[detect_language(statement)]
    variants = (statement, " " + statement, statement.lower(), " " + statement.lower(), words, "\n", "?", "？")
    ids = {i for v in variants for i in tok(v, add_special_tokens=False)["input_ids"]}
    return ids | {tok.eos_token_id}


class Vocabulary:
    """A logits processor that allows only the given token ids."""

    def __init__(self, allowed: set[int]) -> None:
        self.allowed = sorted(allowed)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        mask = torch.full_like(scores, float("-inf"))
        mask[:, self.allowed] = 0
        return scores + mask
