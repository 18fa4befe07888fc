"""The local provider: the embedded default that needs no keys, with the real SmolLM2-135M model."""

from __future__ import annotations

import json

import pytest

from stillroom.distill.provider import Request
from stillroom.distill.providers._local_model import load_model
from stillroom.distill.providers._copying import figure_spans_of, sentence_spans_of
from stillroom.distill.providers.local import plain_fields
from stillroom.distill.router import Router, resolve_chain
from stillroom.errors import StillroomError
from stillroom.settings.distill import DistillSettings, LocalSettings, ProvidersSettings

CHUNK = "Employees may claim travel expenses up to 500 yuan per day. Claims must be filed within 30 days."


def test_no_keys_anywhere_means_local(monkeypatch):
    assert resolve_chain(DistillSettings()) == ["local"]
    assert resolve_chain(DistillSettings(fallback=["gemini", "zhipu"])) == ["local", "gemini", "zhipu"]
    monkeypatch.setenv("ZHIPUAI_API_KEY", "z1")
    assert resolve_chain(DistillSettings(fallback=["gemini", "zhipu"])) == ["zhipu", "gemini"]
    assert resolve_chain(DistillSettings(provider="openai"), provider="local") == ["local"]


def test_a_missing_model_path_names_the_setting(tmp_path):
    with pytest.raises(StillroomError, match=r"\[distill.providers.local\] model"):
        load_model(str(tmp_path / "nope.gguf"))


def test_plain_fields_are_the_required_strings_lists_and_lists_of_string_objects():
    schema = {"properties": {"q": {"type": "string"}, "points": {"type": "array", "items": {"type": "string"}},
                             "figures": {"type": "array", "items": {"$ref": "#/$defs/Figure"}},
                             "note": {"type": "string"}},
              "required": ["q", "points", "figures"],
              "$defs": {"Figure": {"type": "object", "properties": {"text": {"type": "string"},
                                                                    "meaning": {"type": "string"}}}}}
    assert plain_fields(schema) == {"q": ("string", None), "points": ("lines", None),
                                    "figures": ("objects", ["text", "meaning"])}  # `note` is optional: not written
    assert plain_fields({"properties": {"cutoff_hz": {"type": "number"}}}) is None  # then the model writes JSON
    assert plain_fields(None) is None


@pytest.fixture(scope="module")
def tok():
    return load_model()[0]


def _texts(tok, spans, source_ids=None):
    """Every span as text: from each start to each end after it that the copier could reach."""
    ids = spans.ids
    return {tok.decode(ids[a:b]).strip() for a in spans.starts for b in spans.ends if b > a}


POLICY = ("## 2.1 Accommodation\n1.2 Hotel costs are capped at RMB 500 per night. 员工出差住宿费每人每晚不超过500元。"
          "Late claims are refused.\n| Tier-1 | 120元/天 |")


def test_copied_answers_are_whole_sentences_never_headings_numbers_or_table_rows(tok):
    spans = sentence_spans_of(tok, POLICY)
    single = {tok.decode(spans.ids[a:b]).strip() for a in spans.starts for b in spans.ends
              if b > a and not any(a < e < b for e in spans.ends)}
    assert single == {"Hotel costs are capped at RMB 500 per night.", "员工出差住宿费每人每晚不超过500元。",
                      "Late claims are refused."}
    # Preferences narrow where the text allows: figures first, then the model's languages.
    figures_en = sentence_spans_of(tok, POLICY, prefer_figures=True, languages=("en",))
    assert {tok.decode(figures_en.ids[a:b]).strip() for a in figures_en.starts for b in figures_en.stops if b > a} \
        >= {"Hotel costs are capped at RMB 500 per night."}
    assert len(figures_en.starts) == 1
    zh_only = sentence_spans_of(tok, "报销须在30日内提交。逾期提交的申请不予受理。", languages=("en",))
    assert len(zh_only.starts) == 2  # no English sentence: the preference gives way


def test_copied_figures_start_at_a_number_and_may_take_its_unit(tok):
    answer = "1.2 Claims are due within 30 days; 15个工作日内付款，上限20%。"
    texts = _texts(tok, figure_spans_of(tok, answer))
    assert {"30", "30 days", "15", "15个", "15个工作日", "20", "20%"} <= texts
    assert not any(t.startswith(("1.2", "0", "5")) for t in texts)  # no section number, no mid-number start
    assert all("\ufffd" not in t for t in texts)  # a CJK character is never cut between its byte tokens


def test_local_model_numeric_reply_is_copied_from_the_chunk_and_passes_the_task_check(tmp_path):
    from stillroom.distill.tasks import Chunk, load_tasks
    from stillroom.distill.validate import complete_validated

    chunk = Chunk("chk_1", "Hotels. Staff may claim up to RMB 500 per night for a hotel. Claims must be filed within "
                           "30 days of the trip; late claims are refused.", "Travel", "policy.md", True, 40)
    task = load_tasks(["numeric_qa"], DistillSettings(), tmp_path)["numeric_qa"]
    router = Router(DistillSettings(provider="local"))
    request = Request(messages=task.render(chunk), json_schema=task.json_schema, source=chunk.text)
    outcome = complete_validated(router.complete, request, task.model(), lambda r: task.check(r, chunk))
    reply = outcome.reply
    assert reply is not None, outcome
    assert reply.answer in chunk.text and reply.answer.endswith((".", ";"))  # a whole sentence, verbatim
    assert reply.figures and all(f.text in reply.answer and f.text[0].isdigit() for f in reply.figures)
    assert reply.question.strip() and reply.figures[0].meaning.strip()


@pytest.mark.slow
def test_local_model_writes_schema_json_and_plain_text_through_the_router():
    settings = DistillSettings(provider="local", providers=ProvidersSettings(
        local=LocalSettings(rpm=0, max_tokens=24, temperature=0, timeout=300)))
    calls = []
    router = Router(settings, on_call=calls.append)
    schema = {"type": "object", "properties": {"question": {"type": "string"}, "answer": {"type": "string"}}}
    reply = router.complete(Request(messages=[
        {"role": "system", "content": "You write one question and its answer, grounded in the text."},
        {"role": "user", "content": f"Text:\n{CHUNK}"}], json_schema=schema))
    obj = json.loads(reply.text)
    assert set(obj) == {"question", "answer"} and all(isinstance(v, str) and v for v in obj.values())
    assert reply.provider == "local" and reply.key_alias == "local#1" and reply.tokens_out > 0
    plain = router.complete(Request(messages=[{"role": "user", "content": "Say hello."}], max_tokens=8))
    assert plain.text.strip() and plain.finish_reason in ("stop", "length") and plain.tokens_out <= 8
    assert [c.status for c in calls] == ["ok", "ok"]
    assert load_model() is load_model()  # loaded once per process
