"""One file → one document: extract, clean, chunk, count tokens. Runs in worker processes; touches no store."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from stillroom.errors import ExtractError
from stillroom.ids import content_id
from stillroom.ingest.chunker import Chunk, chunk_pages
from stillroom.ingest.clean import clean_pages
from stillroom.ingest.extractors import check_content, extractor_for
from stillroom.ingest.tokenize import Counter, get_counter
from stillroom.settings import Settings


@dataclass
class PageRow:
    number: int
    char_start: int
    text: str
    normalized: bool


@dataclass
class DocResult:
    path: str
    sha256: str
    size: int
    format: str
    n_pages: int
    encoding: str | None
    title: str | None
    meta: dict
    tokenizer: str
    pages: list[PageRow] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    dropped_lines: int = 0
    chunk_ids: list[str] = field(default_factory=list)

    @property
    def normalized(self) -> bool:
        return any(p.normalized for p in self.pages)


_counter: Counter | None = None


def init_worker(tokenizer_spec: str) -> None:
    global _counter
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _counter = get_counter(tokenizer_spec)


def process_file(path: str, sha256: str, size: int, settings: Settings, passwords: tuple[str, ...]) -> DocResult:
    """Raises ExtractError with the file's name and what to do; never returns half a document."""
    if _counter is None:
        init_worker(settings.chunking.tokenizer)
    p = Path(path)
    extractor = extractor_for(p)
    try:
        with open(p, "rb") as f:
            head = f.read(2048)
    except FileNotFoundError:
        raise ExtractError(path, "vanished before it could be read", "put it back and run ingest again") from None
    check_content(p, extractor, head)
    try:
        ex = extractor.extract(p, passwords)
    except FileNotFoundError:
        raise ExtractError(path, "vanished while being read", "put it back and run ingest again") from None
    result = DocResult(path, sha256, size, ex.format, ex.n_pages, ex.encoding, ex.title, ex.meta, _counter.name)
    cleaned = clean_pages(ex.pages, paged=ex.paged, normalize=settings.ingest.normalize_fullwidth,
                          drop_edges=settings.ingest.drop_headers_footers)
    offsets: list[int] = []
    saw_images = False

    def keep(pages):
        nonlocal saw_images
        for page in pages:
            result.dropped_lines += page.dropped_lines
            saw_images |= page.has_images
            result.pages.append(PageRow(page.number, 0, page.text, page.normalized))
            yield page

    result.chunks = list(chunk_pages(keep(cleaned), _counter, settings.chunking, offsets))
    for row, start in zip(result.pages, offsets):
        row.char_start = start
    result.chunk_ids = [content_id("chk", [sha256, c.start, c.end, c.text]) for c in result.chunks]
    if not result.chunks:
        if saw_images:
            raise ExtractError(path, "no text layer (scanned or image-only) — OCR is not configured",
                               "run OCR first (e.g. `ocrmypdf in.pdf out.pdf`) and ingest the result")
        raise ExtractError(path, "no extractable text", "check the file has text content")
    return result
