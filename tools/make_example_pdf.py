"""Renders tools/example_sources/travel-policy.md to examples/travel-policy.pdf (PyMuPDF, built-in CJK font).

The Markdown source lives outside examples/ so the demo ingests the policy once, as a PDF.

Headings get larger fonts, every page a running header and a page number, so the PDF exercises
the same cleaning and heading detection as real policy documents. Run it after editing the Markdown.
"""

from __future__ import annotations

from pathlib import Path

import pymupdf

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES, SOURCE = ROOT / "examples", ROOT / "tools" / "example_sources" / "travel-policy.md"
SIZES = {1: 18, 2: 15, 3: 13}


def main() -> None:
    lines = SOURCE.read_text(encoding="utf-8").splitlines()
    doc = pymupdf.open()
    page, y = None, 0.0

    def new_page():
        p = doc.new_page(width=595, height=842)
        p.insert_text((60, 36), "某某科技有限公司 · 差旅及费用报销制度 (2025)", fontname="china-s", fontsize=8)
        p.insert_text((290, 815), str(doc.page_count), fontname="helv", fontsize=8)
        return p, 70.0

    page, y = new_page()
    for line in lines:
        if not line.strip() or line.startswith("| ---"):
            continue
        level = len(line) - len(line.lstrip("#")) if line.startswith("#") else 0
        text = line.lstrip("# ").strip()
        size = SIZES.get(level, 10.5)
        box = pymupdf.Rect(60, y, 535, 790)
        need = page.insert_textbox(box, text, fontname="china-s", fontsize=size)
        if need < 0:  # did not fit: next page
            page, y = new_page()
            need = page.insert_textbox(pymupdf.Rect(60, y, 535, 790), text, fontname="china-s", fontsize=size)
        y = 790 - need + (size * 0.9 if level else 6)
    doc.save(str(EXAMPLES / "travel-policy.pdf"), garbage=3, deflate=True)


if __name__ == "__main__":
    main()
