"""PDF via PyMuPDF, page by page: text with font sizes, so headings come from size and weight."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterator

from stillroom.errors import ExtractError
from stillroom.ingest.blocks import Block, Extraction, RawPage
from stillroom.ingest.extractors import register
from stillroom.ingest.structure import heading_level, is_list_item

_REPAIR = "the file is damaged or truncated; re-export it or repair it (e.g. `mutool clean in.pdf out.pdf`)"


def _errors() -> tuple[type[BaseException], ...]:
    """What PyMuPDF raises for a damaged file (its low-level errors derive from FzErrorBase)."""
    import pymupdf

    return (RuntimeError, ValueError, pymupdf.FileDataError, pymupdf.mupdf.FzErrorBase)


def _open(path: Path, passwords: tuple[str, ...]):
    import pymupdf

    pymupdf.TOOLS.mupdf_display_errors(False)
    pymupdf.TOOLS.mupdf_display_warnings(False)
    doc = None
    try:
        doc = pymupdf.open(str(path), filetype="pdf")
        if doc.needs_pass and not any(doc.authenticate(pw) for pw in passwords):
            tried = "the given password(s) did not open it" if passwords else "it needs a password"
            raise ExtractError(str(path), f"encrypted PDF: {tried}", "pass --password PASSWORD (repeatable)")
        if doc.page_count == 0:
            raise ExtractError(str(path), "PDF has no pages", _REPAIR)
        return doc
    except _errors() as e:
        if doc is not None:
            doc.close()
        raise ExtractError(str(path), f"not a readable PDF ({e})", _REPAIR) from None
    except ExtractError:
        doc.close()
        raise


class _Fonts:
    """Running count of characters per font size: the most common size is body text."""

    def __init__(self) -> None:
        self.chars: Counter[float] = Counter()

    def body(self) -> float:
        return self.chars.most_common(1)[0][0] if self.chars else 10.0


def _line_text(line: dict) -> tuple[str, float, bool]:
    text = size = 0.0
    parts: list[str] = []
    bold = True
    for span in line["spans"]:
        t = span["text"]
        parts.append(t)
        if t.strip():
            size = max(size, span["size"])
            bold = bold and bool(span["flags"] & 16 or "Bold" in span["font"] or "bold" in span["font"])
    text = "".join(parts).strip()
    return text, round(size, 1), bold and size > 0


def _page_blocks(page_dict: dict, fonts: _Fonts) -> list[Block]:
    lines_by_block = []
    for b in page_dict["blocks"]:
        if b.get("type") != 0:
            continue
        lines = [_line_text(line) for line in b["lines"]]
        lines = [ln for ln in lines if ln[0]]
        for text, size, _ in lines:
            fonts.chars[size] += len(text)
        if lines:
            lines_by_block.append(lines)
    body = fonts.body()
    blocks: list[Block] = []
    for lines in lines_by_block:
        texts = [t for t, _, _ in lines]
        size = max(s for _, s, _ in lines)
        joined = " ".join(texts)
        short = len(lines) <= 3 and len(joined) <= 90 and joined[-1] not in "。.;；:：,，"
        if short and size >= body * 1.15:
            level = 1 if size >= body * 1.6 else 2 if size >= body * 1.3 else 3
            blocks.append(Block("heading", texts, level))
        elif short and len(lines) == 1 and lines[0][2] and (heading_level(joined) or size >= body):
            blocks.append(Block("heading", texts, heading_level(joined) or 4))
        elif any(is_list_item(t) for t in texts[1:]) or (len(texts) > 1 and is_list_item(texts[0])):
            blocks.append(_list_block(texts))
        else:
            blocks.append(Block("para", texts))
    return blocks


def _list_block(texts: list[str]) -> Block:
    items: list[list[str]] = []
    for t in texts:
        if is_list_item(t) or not items:
            items.append([t])
        else:
            items[-1].append(t)  # a wrapped item continues
    return Block("list", [" ".join(parts) for parts in items])


@register
class PdfExtractor:
    suffixes = (".pdf",)

    def sniff(self, head: bytes) -> bool:
        return b"%PDF" in head[:1024]

    def extract(self, path: Path, passwords: tuple[str, ...] = ()) -> Extraction:
        doc = _open(path, passwords)
        try:
            metadata = doc.metadata or {}
        except _errors():
            metadata = {}  # broken metadata is no reason to refuse the text
        title = metadata.get("title") or None
        return Extraction("pdf", self._pages(doc, path), doc.page_count, title=title, paged=True,
                          meta={"pdf_metadata": {k: v for k, v in metadata.items() if v}})

    def _pages(self, doc, path: Path) -> Iterator[RawPage]:
        import pymupdf

        flags = pymupdf.TEXT_MEDIABOX_CLIP | pymupdf.TEXT_PRESERVE_WHITESPACE
        fonts = _Fonts()
        try:
            for i in range(doc.page_count):
                try:
                    page = doc.load_page(i)
                    blocks = _page_blocks(page.get_text("dict", flags=flags, sort=False), fonts)
                    has_images = not blocks and bool(page.get_images())
                except _errors() as e:
                    raise ExtractError(str(path), f"page {i + 1} cannot be read ({e})", _REPAIR) from None
                yield RawPage(i + 1, blocks, has_images)
        finally:
            doc.close()
