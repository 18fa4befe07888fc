"""The local provider: the embedded default that needs no keys, with the real SmolLM2-135M model."""

from __future__ import annotations

import json

import pytest

from stillroom.distill.provider import Request
from stillroom.distill.providers._local_model import load_model
from stillroom.distill.providers.local import _plain_fields
from stillroom.distill.router import Router, resolve_chain
from stillroom.errors import StillroomError
from stillroom.settings.distill import DistillSettings, ProviderSettings, ProvidersSettings

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


def test_plain_fields_only_for_string_schemas():
    assert _plain_fields({"properties": {"q": {"type": "string", "description": "a question"},
                                         "points": {"type": "array", "items": {"type": "string"}}}}) == {
        "q": (False, " (a question)"), "points": (True, "")}
    assert _plain_fields({"properties": {"cutoff_hz": {"type": "number"}}}) is None
    assert _plain_fields(None) is None


@pytest.mark.slow
def test_local_model_writes_schema_json_and_plain_text_through_the_router():
    settings = DistillSettings(provider="local", providers=ProvidersSettings(
        local=ProviderSettings(rpm=0, max_tokens=24, temperature=0, timeout=300)))
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
