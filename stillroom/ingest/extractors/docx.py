"""DOCX via python-docx: heading styles give the heading path; tables become rows."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from stillroom.errors import ExtractError
from stillroom.ingest.blocks import Block, Extraction, RawPage
from stillroom.ingest.extractors import register
from stillroom.ingest.structure import is_list_item


def _paragraph_block(par) -> Block | None:
    text = par.text.strip()
    if not text:
        return None
    style = (par.style.name if par.style is not None else "") or ""
    m = re.match(r"(?:Heading|标题)\s*(\d)", style)
    if m or style == "Title":
        return Block("heading", [text], int(m.group(1)) if m else 1)
    if "List" in style or is_list_item(text):
        return Block("list", [text if is_list_item(text) else "- " + text])
    return Block("para", [text])


@register
class DocxExtractor:
    suffixes = (".docx",)

    def sniff(self, head: bytes) -> bool:
        return head.startswith(b"PK\x03\x04")

    def extract(self, path: Path, passwords: tuple[str, ...] = ()) -> Extraction:
        import docx  # python-docx

        try:
            document = docx.Document(str(path))
        except (zipfile.BadZipFile, KeyError, ValueError) as e:
            raise ExtractError(str(path), f"not a readable DOCX ({e})", "open and re-save it in Word/LibreOffice") from None
        blocks: list[Block] = []
        for child in document.element.body.iterchildren():
            tag = child.tag.rsplit("}", 1)[-1]
            if tag == "p":
                block = _paragraph_block(docx.text.paragraph.Paragraph(child, document))
                if block and blocks and block.kind == "list" and blocks[-1].kind == "list":
                    blocks[-1].lines.extend(block.lines)
                elif block:
                    blocks.append(block)
            elif tag == "tbl":
                table = docx.table.Table(child, document)
                rows = ["| " + " | ".join(c.text.strip() for c in row.cells) + " |" for row in table.rows]
                blocks.append(Block("table", rows))
        title = document.core_properties.title or None
        return Extraction("docx", iter([RawPage(1, blocks)]), 1, title=title)
