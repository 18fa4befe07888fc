"""Raw pages → clean pages: running headers/footers dropped, wrapped lines joined, full-width figures normalised.

Pages stream through a window, so a PDF of thousands of pages is cleaned with bounded memory.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from stillroom.ingest.blocks import Block, RawPage

WINDOW = 32
_PAGE_NUMBER = re.compile(
    r"^[\s\-–—·•|()\[\]]*(page\s*|p\.\s*|第\s*)?\d{1,5}(\s*(页|/\s*\d{1,5}|of\s*\d{1,5}))?[\s\-–—·•|()\[\]]*$", re.I)
_CJK = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")
_FW_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")
# Full-width punctuation that is only safely ASCII when it sits inside a figure: ３０，０００ / ３．５ / １２：３０.
_FW_INSIDE_FIGURE = re.compile(r"(?<=\d)([，．：])(?=\d)")
_FW_AFTER_FIGURE = re.compile(r"(?<=\d)％")
_FW_MAP = {"，": ",", "．": ".", "：": ":"}


@dataclass
class CleanBlock:
    kind: str
    level: int
    text: str
    start: int = 0  # offset in the page text


@dataclass
class CleanPage:
    number: int
    text: str
    blocks: list[CleanBlock] = field(default_factory=list)
    normalized: bool = False
    dropped_lines: int = 0
    has_images: bool = False


def _signature(line: str) -> str:
    """Page numbers (arabic or roman) vary from page to page; the rest of a running line does not."""
    return re.sub(r"\d+|\b[ivxlc]+\b", "#", " ".join(line.lower().split()))


def _edge_lines(page: RawPage, n: int = 2) -> list[tuple[int, int]]:
    """(block index, line index) of the first and last `n` lines of the page."""
    coords = [(b, i) for b, block in enumerate(page.blocks) for i in range(len(block.lines))]
    return coords[:n] + coords[-n:] if len(coords) > 2 * n else coords


def drop_running_lines(pages: list[RawPage], known: set[str]) -> int:
    """Remove running headers/footers (lines at a page edge repeating across pages) and bare page numbers."""
    counts: Counter[str] = Counter()
    for page in pages:
        counts.update({_signature(page.blocks[b].lines[i]) for b, i in _edge_lines(page)})
    # Odd/even pages often carry different running lines: 30% of the pages and at least 3 — or, in a
    # shorter document, every page (and never a single page).
    threshold = max(2, min(len(pages), max(3, int(len(pages) * 0.3) + 1)))
    known |= {sig for sig, c in counts.items() if c >= threshold and sig.strip("# ")}
    dropped = 0
    for page in pages:
        doomed = {(b, i) for b, i in _edge_lines(page)
                  if _signature(page.blocks[b].lines[i]) in known or _PAGE_NUMBER.match(page.blocks[b].lines[i])}
        for b, i in sorted(doomed, reverse=True):
            del page.blocks[b].lines[i]
        dropped += len(doomed)
        page.blocks = [blk for blk in page.blocks if blk.lines]
    return dropped


def join_lines(lines: list[str]) -> str:
    """Wrapped lines → one line: English hyphenation joined, no space inserted between Chinese characters."""
    out = lines[0].strip()
    for nxt in lines[1:]:
        nxt = nxt.strip()
        if not nxt:
            continue
        if len(out) > 1 and out[-1] == "-" and out[-2].isalpha() and nxt[0].islower():
            out = out[:-1] + nxt
        elif _CJK.match(out[-1:]) or _CJK.match(nxt[0]):
            out += nxt
        else:
            out += " " + nxt
    return out


def normalize_figures(text: str) -> str:
    """３０，０００元 → 30,000元; ５％ → 5%. Chinese commas between words stay as they are."""
    text = text.translate(_FW_DIGITS)
    text = _FW_INSIDE_FIGURE.sub(lambda m: _FW_MAP[m.group(1)], text)
    return _FW_AFTER_FIGURE.sub("%", text)


def _block_text(block: Block) -> str:
    if block.kind in ("para", "heading"):
        return join_lines(block.lines)
    return "\n".join(line.rstrip() for line in block.lines if line.strip())


def clean_page(page: RawPage, normalize: bool, dropped: int = 0) -> CleanPage:
    out = CleanPage(page.number, "", dropped_lines=dropped, has_images=page.has_images)
    parts: list[str] = []
    offset = 0
    for block in page.blocks:
        text = _block_text(block)
        if normalize:
            fixed = normalize_figures(text)
            out.normalized |= fixed != text
            text = fixed
        if not text.strip():
            continue
        if parts:
            offset += 2  # the blank line between blocks
        out.blocks.append(CleanBlock(block.kind, block.level, text, offset))
        parts.append(text)
        offset += len(text)
    out.text = "\n\n".join(parts)
    return out


def clean_pages(pages: Iterable[RawPage], *, paged: bool, normalize: bool = True,
                drop_edges: bool = True) -> Iterator[CleanPage]:
    known: set[str] = set()
    window: list[RawPage] = []

    def flush() -> Iterator[CleanPage]:
        before = [sum(len(b.lines) for b in p.blocks) for p in window]
        if paged and drop_edges and (len(window) >= 2 or known):
            drop_running_lines(window, known)
        for n, page in zip(before, window):
            yield clean_page(page, normalize, n - sum(len(b.lines) for b in page.blocks))
        window.clear()

    for page in pages:
        window.append(page)
        if len(window) >= WINDOW:
            yield from flush()
    yield from flush()
