"""Real input files built by the tests themselves: PDFs with PyMuPDF, GBK text, DOCX, HTML."""

from __future__ import annotations

from pathlib import Path

POLICY_ZH = [
    ("第二章 差旅费", 20, None),
    ("2.1 住宿标准", 15, None),
    ("员工出差住宿费每人每晚不超过500元，一线城市上浮至800元。超出部分由个人承担，特殊情况须经部门负责人审批。", 11, None),
    ("2.2 交通费", 15, None),
    ("高铁二等座全额报销。飞机经济舱需提前3天预订，票价超过1,200元的航班须说明理由。出租车费每日上限为150元。", 11, None),
]


def make_policy_pdf(path: Path, pages: int = 4) -> Path:
    """Chinese multi-page PDF: headings in larger fonts, a table, a running header and page numbers."""
    import pymupdf

    doc = pymupdf.open()
    for n in range(1, pages + 1):
        page = doc.new_page(width=595, height=842)
        page.insert_text((60, 40), "某某公司差旅费报销制度（2024年版）", fontname="china-s", fontsize=9)
        y = 90
        for text, size, _ in POLICY_ZH:
            text = text if n == 1 else text.replace("第二章", f"第{n + 1}章")
            box = pymupdf.Rect(60, y, 535, y + 120)
            page.insert_textbox(box, text, fontname="china-s", fontsize=size)
            y += 30 if size > 11 else 70
        for row in ("级别 | 住宿 | 交通", "经理 | 800元 | 300元", "员工 | 500元 | 150元"):
            page.insert_text((60, y), row, fontname="china-s", fontsize=11)
            y += 18
        page.insert_text((290, 810), str(n), fontname="helv", fontsize=9)
    doc.save(str(path))
    return path


def make_english_pdf(path: Path) -> Path:
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((72, 72), "Travel Policy", fontsize=20)
    body = ("Employees may claim hotel costs of up to $250 per night. The reimburse-\n"
            "ment request must be filed within 30 days. Meals are capped at 65 percent\n"
            "of the daily allowance of $80.")
    page.insert_text((72, 110), body, fontsize=11)
    doc.save(str(path))
    return path


def make_encrypted_pdf(path: Path, password: str = "s3cret") -> Path:
    import pymupdf

    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), "Confidential: the limit is 9,000 yuan.", fontsize=12)
    doc.save(str(path), encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw=password, owner_pw=password + "-owner")
    return path


def make_image_only_pdf(path: Path) -> Path:
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page()
    pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 64, 64), False)
    pix.clear_with(200)
    page.insert_image(page.rect, pixmap=pix)
    doc.save(str(path))
    return path


def make_docx(path: Path) -> Path:
    import docx

    d = docx.Document()
    d.add_heading("报销制度", level=1)
    d.add_heading("第一节 餐费", level=2)
    d.add_paragraph("每人每餐不超过80元。")
    d.add_paragraph("团队聚餐须提前审批。", style="List Bullet")
    table = d.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "城市", "上限"
    table.cell(1, 0).text, table.cell(1, 1).text = "北京", "800元"
    d.save(str(path))
    return path


HTML = """<html><head><title>Policy</title><script>alert(1)</script></head><body>
<h1>Expense policy</h1><p>Taxi fares are reimbursed up to $40 per day.</p>
<h2>Hotels</h2><ul><li>Standard rooms only.</li><li>Up to 3 nights without approval.</li></ul>
<table><tr><th>City</th><th>Limit</th></tr><tr><td>London</td><td>£180</td></tr></table></body></html>"""
