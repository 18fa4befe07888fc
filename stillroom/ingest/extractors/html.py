"""HTML: headings h1–h6, paragraphs, list items and table rows, scripts and styles dropped."""

from __future__ import annotations

from pathlib import Path

from bs4 import BeautifulSoup

from stillroom.ingest.blocks import Block, Extraction, RawPage
from stillroom.ingest.decode import decode_text
from stillroom.ingest.extractors import register
from stillroom.ingest.extractors.text import looks_textual

_BLOCK_TAGS = ["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "tr", "pre", "blockquote", "dt", "dd"]


def html_blocks(soup: BeautifulSoup) -> list[Block]:
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        tag.decompose()
    blocks: list[Block] = []
    for el in soup.find_all(_BLOCK_TAGS):
        if el.find_parent(["li", "tr", "pre", "p"]) is not None and el.name not in ("tr",):
            continue  # nested inside a block we already take whole
        if el.name == "tr":
            cells = [c.get_text(" ", strip=True) for c in el.find_all(["td", "th"])]
            _add(blocks, "table", "| " + " | ".join(cells) + " |")
        elif el.name in ("h1", "h2", "h3", "h4", "h5", "h6"):
            text = el.get_text(" ", strip=True)
            if text:
                blocks.append(Block("heading", [text], int(el.name[1])))
        elif el.name == "li":
            _add(blocks, "list", "- " + el.get_text(" ", strip=True))
        elif el.name == "pre":
            blocks.append(Block("code", el.get_text().splitlines()))
        else:
            text = " ".join(el.get_text(" ", strip=True).split())
            if text:
                blocks.append(Block("para", [text]))
    return blocks


def _add(blocks: list[Block], kind: str, line: str) -> None:
    if blocks and blocks[-1].kind == kind:
        blocks[-1].lines.append(line)
    else:
        blocks.append(Block(kind, [line]))


@register
class HtmlExtractor:
    suffixes = (".html", ".htm")

    def sniff(self, head: bytes) -> bool:
        return looks_textual(head) and b"<" in head

    def extract(self, path: Path, passwords: tuple[str, ...] = ()) -> Extraction:
        text, encoding = decode_text(path.read_bytes(), str(path))
        soup = BeautifulSoup(text, "html.parser")
        title = soup.title.get_text(strip=True) if soup.title else None
        blocks = html_blocks(soup)
        return Extraction("html", iter([RawPage(1, blocks)]), 1, encoding=encoding, title=title)
