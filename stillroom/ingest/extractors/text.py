"""Plain text in UTF-8 (with or without BOM), GBK/GB18030 or UTF-16."""

from __future__ import annotations

from pathlib import Path

from stillroom.ingest.blocks import Extraction, RawPage
from stillroom.ingest.decode import decode_text
from stillroom.ingest.extractors import register
from stillroom.ingest.structure import lines_to_blocks


def looks_textual(head: bytes) -> bool:
    """Binary formats (PDF, zip, images) are not text, whatever their extension says."""
    if head.startswith((b"%PDF", b"PK\x03\x04", b"\x89PNG", b"\xff\xd8\xff", b"GIF8")):
        return False
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or head.count(0) > len(head) / 8:
        return True  # UTF-16
    return head.count(0) == 0


@register
class TextExtractor:
    suffixes = (".txt", ".text")

    def sniff(self, head: bytes) -> bool:
        return looks_textual(head)

    def extract(self, path: Path, passwords: tuple[str, ...] = ()) -> Extraction:
        text, encoding = decode_text(path.read_bytes(), str(path))
        page = RawPage(1, lines_to_blocks(text.splitlines()))
        return Extraction("txt", iter([page]), 1, encoding=encoding)
