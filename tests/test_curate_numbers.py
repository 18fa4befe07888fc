"""Figures are found and normalised the way people write them, in Chinese and English, and matched to the source."""

from __future__ import annotations

import pytest

from stillroom.curate.numbers import find_figures, match_figures


def one(text: str):
    figs = find_figures(text)
    assert len(figs) == 1, f"{text!r} → {figs}"
    return figs[0].kind, figs[0].value, figs[0].unit


@pytest.mark.parametrize("variants", [
    ["30000元", "30,000元", "3万元", "三万元", "人民币30000元", "RMB 30,000", "¥30,000"],
    ["5%", "百分之五", "5 percent", "5 per cent", "five percent", "5％"],
    ["十五日", "15日", "15天", "fifteen days", "15 days"],
    ["2024年3月1日", "2024-03-01", "2024/3/1", "March 1, 2024", "1 March 2024", "二〇二四年三月一日", "Mar. 1st, 2024"],
    ["$15 million", "$15,000,000", "US$15M", "15 million dollars", "USD 15,000,000"],
    ["65 percent", "65%", "百分之六十五", "sixty-five percent"],
    ["five thousand", "5,000", "5000", "五千"],
    ["1.2亿元", "120,000,000元", "一亿二千万元"],
    ["三万五千元", "35,000元", "3.5万元"],
])
def test_variants_normalise_to_one_value(variants):
    assert len({one(v) for v in variants}) == 1, {v: one(v) for v in variants}


@pytest.mark.parametrize("text, expected", [
    ("3-5天", ("range", (3.0, 5.0), "day")),
    ("3至5万元", ("range", (30000.0, 50000.0), "CNY")),
    ("between 3 and 5 years", ("range", (3.0, 5.0), "year")),
    ("9:30", ("time", (9, 30), None)),
    ("3个月", ("number", 3.0, "month")),
    ("第三条", ("number", 3.0, "article")),
    ("千分之五", ("number", 0.5, "%")),
])
def test_ranges_times_and_units(text, expected):
    assert one(text) == expected


@pytest.mark.parametrize("text", ["一般来说，一个员工应当统一办理", "千万不要逾期", "这一点十分重要", "one of the rules",
                                  "1. 提交申请\n2. 审批", "（1）填写表单；（2）上传票据", "第一，填表；第二，审批；第三，付款",
                                  "第2点需要注意"])
def test_words_and_list_markers_are_not_figures(text):
    assert find_figures(text) == []


SOURCE = "第三条 住宿费上限为每晚500元，全年累计不超过3万元。本办法自2024年3月1日起施行，须在十五日内提交，逾期扣减5%。"


@pytest.mark.parametrize("answer", ["全年不超过30,000元", "全年不超过三万元", "自2024-03-01起施行", "须在15日内提交",
                                    "逾期扣减百分之五", "每晚500元", "2024年起施行", "3月1日起"])
def test_faithful_figures_are_found_with_their_span(answer):
    [m] = match_figures(answer, SOURCE)
    assert m.found, m
    assert SOURCE[m.source_span[0]:m.source_span[1]] == m.source_text


@pytest.mark.parametrize("answer", ["全年不超过4万元", "每晚600元", "自2024年3月2日起施行", "须在20日内提交",
                                    "逾期扣减5天", "自2023-03-01起施行", "逾期扣减百分之十"])
def test_altered_figures_are_not_in_source(answer):
    [m] = match_figures(answer, SOURCE)
    assert not m.found and m.source_span is None


def test_english_source_and_answer():
    source = "The fund may spend up to $15 million; claims are due within 30 days; late claims lose 65 percent."
    found = {m.figure.text: m.found for m in match_figures(
        "Up to $15,000,000 may be spent, claims are due in thirty days, and late ones lose 65% (not 70%).", source)}
    assert found == {"$15,000,000": True, "thirty days": True, "65%": True, "70%": False}


def test_range_matches_its_endpoints_in_the_source():
    source = "培训期不少于3天，不超过5天。"
    [m] = match_figures("培训期为3-5天", source)
    assert m.found and m.source_text.startswith("3天")
    [m] = match_figures("培训期为3-6天", source)
    assert not m.found
