"""Plain lines → blocks: paragraphs, list items, table rows and numbered headings (text and PDF share it)."""

from __future__ import annotations

import re

from stillroom.ingest.blocks import Block

# 第二章 / 第3节 / 第十条, "2.3 差旅费", "一、总则", "Chapter 4", "Section 2.1"
_HEADING = re.compile(
    r"^(第[一二三四五六七八九十百零〇\d]+[章节篇部条款]|[一二三四五六七八九十]+、|"
    r"(chapter|section|part|appendix)\s+[\dIVXivx]+|\d+(\.\d+){0,3}\s+\S)",
    re.IGNORECASE,
)
_LIST_ITEM = re.compile(r"^\s*([-*•·●▪◦]|\(?\d{1,3}[.)、）]|（\d{1,3}）|\([a-z]\)|[a-z][.)])\s*\S")
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$|\t")
_END_PUNCT = "。！？；：.!?;:,，、"


def heading_level(line: str) -> int:
    """0 when `line` does not look like a numbered heading; else 1 (chapter) .. 4."""
    s = line.strip()
    if not s or len(s) > 60 or s[-1] in _END_PUNCT or not _HEADING.match(s):
        return 0
    if re.match(r"^第.+[章篇部]|^(chapter|part)\b", s, re.IGNORECASE):
        return 1
    m = re.match(r"^(\d+(?:\.\d+)*)\s", s)
    if m:
        return min(m.group(1).count(".") + 1, 4)
    return 2


def is_list_item(line: str) -> bool:
    return bool(_LIST_ITEM.match(line))


def is_table_row(line: str) -> bool:
    return bool(_TABLE_ROW.search(line))


def lines_to_blocks(lines: list[str], detect_headings: bool = True) -> list[Block]:
    """Blank lines end paragraphs; list items and table rows become their own blocks."""
    blocks: list[Block] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(Block("para", para.copy()))
            para.clear()

    for raw in lines:
        line = raw.rstrip()
        if not line.strip():
            flush()
        elif detect_headings and (level := heading_level(line)):
            flush()
            blocks.append(Block("heading", [line.strip()], level))
        elif is_table_row(line):
            flush()
            _append(blocks, "table", line)
        elif is_list_item(line):
            flush()
            _append(blocks, "list", line)
        elif blocks and blocks[-1].kind == "list" and not para and raw[:1].isspace():
            blocks[-1].lines[-1] += " " + line.strip()  # continuation of a wrapped list item
        else:
            para.append(line)
    flush()
    return blocks


def _append(blocks: list[Block], kind: str, line: str) -> None:
    if blocks and blocks[-1].kind == kind:
        blocks[-1].lines.append(line)
    else:
        blocks.append(Block(kind, [line]))
