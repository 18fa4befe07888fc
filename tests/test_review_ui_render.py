"""Marked pieces of text and the one-line evidence summaries the templates show."""

from __future__ import annotations

from stillroom.review_ui.render import Piece, bars, histogram, marked, reasons


def test_marked_cuts_text_at_spans_and_clips_what_overlaps():
    text = "住宿每晚500元，补贴每天80元。"
    pieces = marked(text, [(13, 16, "found", "b"), (4, 8, "found", "a"), (6, 10, "x", "overlaps a")])
    assert "".join(p.text for p in pieces) == text
    assert pieces == [Piece("住宿每晚"), Piece("500元", "found", "a"), Piece("，补", "x", "overlaps a"), Piece("贴每天"),
                      Piece("80元", "found", "b"), Piece("。")]


def test_spans_past_the_end_are_clipped():
    assert marked("abc", [(1, 99, "m", "")]) == [Piece("a"), Piece("bc", "m", "")]
    assert marked("", [(0, 3, "m", "")]) == []


def test_reasons_summarise_evidence_without_the_noise():
    assert reasons({"overlap": 0.0, "truncated": False, "problems": ["too short"], "figures": [{"text": "5"}],
                    "weights": {"a": 1}}) == "overlap: 0.00; problems: too short"
    assert reasons('{"documents": 3, "failed": []}') == "documents: 3"
    assert reasons(None) == ""


def test_histogram_and_bars_scale_into_the_box():
    h = histogram([0.0, 0.05, 0.95, 1.0])
    assert h[0] == ("0.0", 2.0) and h[-1] == ("0.9", 2.0) and sum(v for _, v in h) == 4
    b = bars([("qa", 10.0), ("numeric_qa", 5.0)], width=200, height=100)
    assert b[0].height == 84 and b[1].height == 42 and b[1].x == 102
