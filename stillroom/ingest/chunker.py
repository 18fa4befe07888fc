"""Clean pages → chunks: heading-aware, sentence-aware, within a token budget, with real overlap.

The chunker sees the document as one text: pages joined by a blank line, so a chunk's
(start, end) always satisfies `document_text[start:end] == chunk.text`, and, for a chunk on one
page, `page.text[start - page.char_start:end - page.char_start] == chunk.text`. Atoms (a sentence,
a list item, a table row, a heading) are never split, except a single sentence longer than the whole
budget, which is cut at a comma or space that is not inside a figure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Iterator

from stillroom.ingest.clean import CleanPage
from stillroom.ingest.sentences import sentence_spans, soft_breaks
from stillroom.ingest.tokenize import Counter
from stillroom.settings.ingest import ChunkingSettings

PAGE_SEPARATOR = "\n\n"
_FIGURE = re.compile(r"\d|[一二三四五六七八九十百千万亿两][一二三四五六七八九十百千万亿两]*[元%天日月年个人次倍岁]|百分之")
# A number that numbers its line rather than states a figure: a section number ("1.3 ", "第3条") or a list marker
# ("2)", "（2）", "3、", "4. ") at the line's start. "1.5倍", "3.5%" or "2024年" opening a line stay figures.
_LINE_NUMBER = re.compile(r"^\s*(?:\d{1,3}(?:\.\d{1,3})+\.?\s|第\d+[章节篇部条款]"  # 1.3 / 2.1.4. / 第3条
                          r"|[(（]\d{1,3}[)）]|\d{1,3}(?:[)、）]|\.(?!\d)))")  # (2) （2） 2) 2、 2.


@dataclass
class Atom:
    start: int  # in document text
    end: int
    page: int
    tokens: int
    heading: int = 0  # heading level, 0 for content
    text: str = ""


@dataclass
class Chunk:
    seq: int
    start: int
    end: int
    page_start: int
    page_end: int
    heading_path: str
    text: str
    n_tokens: int
    has_figures: bool = False  # candidates for numeric tasks: see states_figures()


def states_figures(text: str, headings: Iterable[str] = ()) -> bool:
    """Whether `text` states a figure. Heading lines (`headings`: numbered, Markdown `#` or setext ones, as the
    chunker found them) only name a section, and a number opening a line as its section number or list
    marker counts nothing."""
    skip = {h.strip() for h in headings}
    for line in text.splitlines():
        if line.strip() in skip:
            continue
        if _FIGURE.search(_LINE_NUMBER.sub("", line, count=1)):
            return True
    return False


def page_atoms(page: CleanPage, page_start: int, counter: Counter, max_tokens: int) -> list[Atom]:
    atoms: list[Atom] = []
    for block in page.blocks:
        base = page_start + block.start
        if block.kind == "heading":
            atoms.append(Atom(base, base + len(block.text), page.number, 0, max(block.level, 1), block.text))
        elif block.kind == "para":
            atoms += [Atom(s, e, page.number, 0, 0, page.text[s - page_start:e - page_start])
                      for s, e in sentence_spans(block.text, base)]
        else:  # list items, table rows and code lines stay whole
            offset = 0
            for line in block.text.split("\n"):
                if line.strip():
                    atoms.append(Atom(base + offset, base + offset + len(line), page.number, 0, 0, line))
                offset += len(line) + 1
    counts = counter.count_batch([a.text for a in atoms])
    for atom, n in zip(atoms, counts):
        atom.tokens = n
    return [piece for atom in atoms for piece in _split_oversized(atom, counter, max_tokens)]


def _split_oversized(atom: Atom, counter: Counter, max_tokens: int) -> list[Atom]:
    if atom.tokens <= max_tokens or atom.heading:
        return [atom]
    text = atom.text
    breaks = soft_breaks(text) or [i for i in range(1, len(text)) if not text[i - 1:i + 1].isdigit()]
    per_char = atom.tokens / max(len(text), 1)
    cuts, start, last = [], 0, 0
    for b in breaks + [len(text)]:
        if (b - start) * per_char > max_tokens * 0.9:
            cut = last if last > start else b
            cuts.append((start, cut))
            start = cut
        last = b
    cuts.append((start, len(text)))
    out = []
    for s, e in cuts:
        piece = text[s:e]
        lead = len(piece) - len(piece.lstrip())
        piece = piece.strip()
        if piece:
            out.append(Atom(atom.start + s + lead, atom.start + s + lead + len(piece), atom.page, 0, 0, piece))
    for part, n in zip(out, counter.count_batch([p.text for p in out])):
        part.tokens = n
    return out


class _DocText:
    """The document text, kept only from the oldest page a pending chunk may still need."""

    def __init__(self) -> None:
        self.pages: list[tuple[int, str]] = []  # (char_start, text)

    def add(self, start: int, text: str) -> None:
        self.pages.append((start, text))

    def slice(self, start: int, end: int) -> str:
        full_start = self.pages[0][0]
        full = PAGE_SEPARATOR.join(t for _, t in self.pages)
        return full[start - full_start:end - full_start]

    def forget_before(self, offset: int) -> None:
        while len(self.pages) > 1 and self.pages[1][0] <= offset:
            self.pages.pop(0)


def chunk_pages(pages: Iterable[CleanPage], counter: Counter, cfg: ChunkingSettings,
                page_offsets: list[int] | None = None) -> Iterator[Chunk]:
    """Stream chunks from pages. `page_offsets`, when given, receives each page's char_start."""
    doc = _DocText()
    headings: list[tuple[int, str]] = []
    current: list[Atom] = []
    pending: Chunk | None = None
    pending_atoms: list[Atom] = []
    seq = 0
    offset = 0
    fresh = 0  # content atoms added since the last chunk was emitted (overlap atoms don't count)

    def make(atoms: list[Atom]) -> Chunk:
        path = " > ".join(t for _, t in headings)
        text = doc.slice(atoms[0].start, atoms[-1].end)
        return Chunk(0, atoms[0].start, atoms[-1].end, atoms[0].page, atoms[-1].page, path, text,
                     sum(a.tokens for a in atoms), states_figures(text, [a.text for a in atoms if a.heading]))

    def emit(atoms: list[Atom]) -> Iterator[Chunk]:
        nonlocal pending, pending_atoms, seq
        if not any(not a.heading for a in atoms):
            return
        new = make(atoms)
        content_new = sum(a.tokens for a in atoms if not a.heading)
        if pending is not None and content_new < cfg.min_tokens and pending.heading_path == new.heading_path \
                and pending.n_tokens + new.n_tokens <= cfg.max_tokens and new.start <= pending.end + 2:
            merged = pending_atoms + [a for a in atoms if a.start >= pending.end]
            pending, pending_atoms = make(merged), merged
            return
        if pending is not None:
            pending.seq = seq
            seq += 1
            yield pending
        pending, pending_atoms = new, atoms

    for page in pages:
        if offset:
            offset += len(PAGE_SEPARATOR)
        if page_offsets is not None:
            page_offsets.append(offset)
        doc.add(offset, page.text)
        for atom in page_atoms(page, offset, counter, cfg.max_tokens):
            if atom.heading:
                if fresh:
                    yield from emit(current)
                if fresh or not any(a.heading for a in current):
                    current = []  # a new section starts clean: no overlap across headings
                fresh = 0
                while headings and headings[-1][0] >= atom.heading:
                    headings.pop()
                headings.append((atom.heading, atom.text))
                current.append(atom)
                continue
            if fresh and sum(a.tokens for a in current) + atom.tokens > cfg.max_tokens:
                yield from emit(current)
                current, fresh = _overlap(current, cfg.overlap_tokens), 0
            while not fresh and current and not current[0].heading \
                    and sum(a.tokens for a in current) + atom.tokens > cfg.max_tokens:
                current.pop(0)  # overlap never pushes a chunk over the budget
            current.append(atom)
            fresh += 1
        offset += len(page.text)
        oldest = min([a.start for a in current + pending_atoms] or [offset])
        doc.forget_before(oldest)
    if fresh:
        yield from emit(current)
    if pending is not None:
        pending.seq = seq
        yield pending


def _overlap(atoms: list[Atom], budget: int) -> list[Atom]:
    """The trailing whole sentences of the last chunk, up to `budget` tokens, begin the next one."""
    kept: list[Atom] = []
    total = 0
    for atom in reversed(atoms):
        if atom.heading or total + atom.tokens > budget:
            break
        kept.insert(0, atom)
        total += atom.tokens
    return kept
