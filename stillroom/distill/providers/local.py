"""A model run in-process with transformers: the default when no keys are set. The model loads once
per process. Its structured output: a small model cannot be trusted to write JSON, so for a schema
of string (or list-of-string) fields each field is generated on its own, as plain text, and the
JSON is assembled here — valid by construction, still validated by the runner like any reply."""

from __future__ import annotations

import json
from typing import Any

from stillroom.distill.provider import PROVIDERS, Completion, Key, Provider, Request
from stillroom.distill.providers._local_model import DEFAULT_GGUF, generate, load_model


@PROVIDERS.register("local")
class LocalProvider(Provider):
    name = "local"
    needs_key = False

    def call(self, request: Request, key: Key) -> Completion:
        tok, model = load_model(self.settings.model)
        fields = _plain_fields(request.json_schema) if self.settings.json_mode != "off" else None
        model_name = self.settings.model or DEFAULT_GGUF
        if not fields:
            text, n_in, n_out, reason = generate(tok, model, request.messages, *self._limits(request))
            return Completion(text=text, finish_reason=reason, tokens_in=n_in, tokens_out=n_out, model=model_name)
        obj: dict[str, Any] = {}
        tokens_in = tokens_out = 0
        finish = "stop"
        # One conversation, one field per turn, so later fields (the answer) see earlier ones (the question).
        convo, pending = [dict(m) for m in request.messages], ""
        if convo and convo[-1]["role"] == "user":
            pending = convo.pop()["content"] + "\n\n"
        for field, (is_list, hint) in fields.items():
            ask = (f"Write only the {field}{hint}: plain text, no JSON, no label"
                   + (", one item per line." if is_list else "."))
            convo.append({"role": "user", "content": pending + ask})
            text, n_in, n_out, reason = generate(tok, model, convo, *self._limits(request))
            convo.append({"role": "assistant", "content": text})
            pending = ""
            tokens_in, tokens_out = tokens_in + n_in, tokens_out + n_out
            finish = "length" if reason == "length" else finish
            obj[field] = [ln.strip().lstrip("-*• ").strip() for ln in text.splitlines() if ln.strip()] if is_list \
                else text.strip()
        return Completion(text=json.dumps(obj, ensure_ascii=False), finish_reason=finish, tokens_in=tokens_in,
                          tokens_out=tokens_out, model=model_name)

    def _limits(self, request: Request) -> tuple[float, int, float]:
        return self.temperature(request), self.max_tokens(request), self.settings.timeout


def _plain_fields(schema: dict | None) -> dict[str, tuple[bool, str]] | None:
    """{field: (is a list, description hint)} when every property is a string or a list of strings."""
    props = (schema or {}).get("properties")
    if not props:
        return None
    out = {}
    for name, spec in props.items():
        is_list = spec.get("type") == "array" and (spec.get("items") or {}).get("type") == "string"
        if spec.get("type") != "string" and not is_list:
            return None
        out[name] = (is_list, f" ({spec['description']})" if spec.get("description") else "")
    return out

