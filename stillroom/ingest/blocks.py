"""What extractors hand to cleaning and chunking: pages of typed blocks of lines."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

BlockKind = Literal["heading", "para", "list", "table", "code"]


@dataclass
class Block:
    """One visual unit. `lines` are the text as laid out (wrapped lines, table rows, list items).

    Headings carry a `level` (1 = top). Lines of `list`, `table` and `code` blocks are never joined
    or split by the chunker: a list item or a table row always stays whole.
    """

    kind: BlockKind
    lines: list[str]
    level: int = 0


@dataclass
class RawPage:
    number: int  # 1-based
    blocks: list[Block] = field(default_factory=list)
    has_images: bool = False


@dataclass
class Extraction:
    """An extractor's answer: metadata now, pages as a stream (a huge PDF never sits in memory whole)."""

    format: str
    pages: object  # Iterator[RawPage]
    n_pages: int
    encoding: str | None = None
    title: str | None = None
    meta: dict = field(default_factory=dict)
    paged: bool = False  # real pages (PDF): running headers/footers can exist
