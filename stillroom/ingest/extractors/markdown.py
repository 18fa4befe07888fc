"""Markdown: ATX/setext headings give the heading path; fences, tables and lists stay whole."""

from __future__ import annotations

import re
from pathlib import Path

from stillroom.ingest.blocks import Block, Extraction, RawPage
from stillroom.ingest.decode import decode_text
from stillroom.ingest.extractors import register
from stillroom.ingest.extractors.text import looks_textual
from stillroom.ingest.structure import lines_to_blocks

_ATX = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def markdown_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    pending: list[str] = []  # ordinary lines, handed to the shared paragraph/list/table logic
    lines = text.splitlines()
    i = 0

    def flush() -> None:
        blocks.extend(lines_to_blocks(pending, detect_headings=False))
        pending.clear()

    while i < len(lines):
        line = lines[i]
        if _FENCE.match(line):
            flush()
            fence = _FENCE.match(line).group(1)
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith(fence):
                j += 1
            blocks.append(Block("code", lines[i:j + 1]))
            i = j + 1
            continue
        m = _ATX.match(line)
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if m and m.group(2):
            flush()
            blocks.append(Block("heading", [m.group(2)], len(m.group(1))))
        elif line.strip() and not pending_is_list(pending) and re.fullmatch(r"\s*(=+|-{2,})\s*", nxt) \
                and not line.lstrip().startswith(("-", "*", "|")):
            flush()
            blocks.append(Block("heading", [line.strip()], 1 if "=" in nxt else 2))
            i += 1
        else:
            pending.append(line)
        i += 1
    flush()
    return blocks


def pending_is_list(pending: list[str]) -> bool:
    return bool(pending) and pending[-1].strip() != "" and pending[-1].lstrip()[:1] in "-*+|"


@register
class MarkdownExtractor:
    suffixes = (".md", ".markdown")

    def sniff(self, head: bytes) -> bool:
        return looks_textual(head)

    def extract(self, path: Path, passwords: tuple[str, ...] = ()) -> Extraction:
        text, encoding = decode_text(path.read_bytes(), str(path))
        blocks = markdown_blocks(text)
        title = next((b.lines[0] for b in blocks if b.kind == "heading"), None)
        return Extraction("md", iter([RawPage(1, blocks)]), 1, encoding=encoding, title=title)
