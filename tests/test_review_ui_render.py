"""Marked pieces of text and the one-line evidence summaries the templates show."""

from __future__ import annotations

from stillroom.review_ui.render import Piece, bars, histogram, marked, reasons
from stillroom.curate.support import support_spans


def test_marked_cuts_text_at_spans_and_layers_what_overlaps():
    text = "住宿每晚500元，补贴每天80元。"
    pieces = marked(text, [(13, 16, "found", "b"), (4, 8, "found", "a"), (6, 10, "x", "overlaps a")])
    assert "".join(p.text for p in pieces) == text
    assert pieces == [Piece("住宿每晚"), Piece("50", "found", "a"), Piece("0元", "found x", "a; overlaps a"),
                      Piece("，补", "x", "overlaps a"), Piece("贴每天"), Piece("80元", "found", "b"), Piece("。")]


def test_a_figure_inside_a_supporting_sentence_carries_both_marks():
    text = "第一句。住宿每晚500元。"
    pieces = marked(text, [(4, 13, "support", "supports the answer"), (8, 12, "found", "500元")])
    assert pieces == [Piece("第一句。"), Piece("住宿每晚", "support", "supports the answer"),
                      Piece("500元", "support found", "supports the answer; 500元"),
                      Piece("。", "support", "supports the answer")]


def test_support_marks_the_sentences_that_share_most_with_the_answer():
    src = "第二章 差旅费\n员工出差住宿标准为每晚500元，交通补贴每天80元。报销须在出差结束后15日内提交。附则略。"
    spans = lambda answer: [src[s:e] for s, e in support_spans(src, answer)]  # noqa: E731
    assert spans("每晚500元。") == ["员工出差住宿标准为每晚500元，交通补贴每天80元。"]
    assert spans("住宿每晚500元；报销在15日内提交。") == ["员工出差住宿标准为每晚500元，交通补贴每天80元。",
                                                  "报销须在出差结束后15日内提交。"]
    assert spans("不知道。") == []  # nothing in common: nothing marked
    en = "The allowance is 500 yuan a night. Transport is 80 yuan a day. Claims are due within 15 days."
    assert [en[s:e] for s, e in support_spans(en, "File claims within 15 days.")] == ["Claims are due within 15 days."]
    # a decimal point is not the end of a sentence
    rate = "The rate is 3.5 percent. Nothing else applies."
    assert [rate[s:e] for s, e in support_spans(rate, "It is 3.5 percent.")] == ["The rate is 3.5 percent."]


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
