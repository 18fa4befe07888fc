"""A model run in-process with transformers: the default when no keys are set. The model loads once
per process (a .gguf file is converted once and cached).

Its structured output: a small model cannot be trusted to write JSON, so each field of the reply
schema is generated on its own, as plain text, in one conversation (the answer sees the question),
and the JSON is assembled here — valid by construction, still validated by the runner like any reply.
Fields named in `copy_fields` are copied from the chunk rather than written (see _copying): the model
picks the sentences that answer its question, and the figures it lists come from that answer.
Only required fields are written when the schema names some, and the few-shot turns (JSON replies)
are left out: they cost a 135M model seconds per field and teach it nothing about plain text.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from stillroom.distill.prompts import detect_language
from stillroom.distill.provider import PROVIDERS, Completion, Key, Provider, Request
from stillroom.distill.providers._copying import (Spans, figure_spans_of, sentence_spans_of,
                                                  statement_vocabulary)
from stillroom.distill.providers._local_model import DEFAULT_GGUF, complete_pattern, generate, load_model
from stillroom.settings.distill import LocalSettings

FIGURE_TOKENS = 16  # a copied figure with its unit ("RMB 1,500", "15个工作日") fits easily
SHORT_TOKENS = 24
RETRIES = 2  # sampled retries of a pattern line that ran past its token budget
QUESTION_TOKENS = 48  # a question longer than this from a 135M model is a ramble: cut, it fails as truncated

# Fields written by continuing a plain-text pattern (see complete_pattern), per language: labels, then shots.
# The last label is the field; the others are filled from the copied answer (and the copied figure).
PATTERNS: dict[str, dict[str, tuple[tuple[str, ...], list[tuple[str, ...]]]]] = {
    "question": {
        "en": (("Statement: ", "Question: "), [
            ("Staff travelling to London may claim up to GBP 180 per night for a hotel.",
             "How much can staff claim per night for a hotel in London?"),
            ("Claims must be filed within 15 working days of returning.",
             "How long do staff have to file a claim after returning?"),
            ("Meals are reimbursed at 60% of the receipt when no client is present.",
             "What share of a meal receipt is reimbursed when no client is present?")]),
        "zh": (("陈述：", "问题："), [
            ("一般工作人员在直辖市出差，每人每天住宿费不超过500元。", "一般工作人员在直辖市出差，每天住宿费最多能报多少？"),
            ("单笔采购金额超过2万元的，须经分管领导审批。", "多大金额的采购需要分管领导审批？"),
            ("试用期员工的年假为每年5天。", "试用期员工每年有几天年假？")]),
    },
    "meaning": {
        "en": (("Statement: ", "Figure: ", "Meaning: "), [
            ("Claims must be filed within 15 working days of returning.", "15 working days", "filing deadline"),
            ("Staff in London may claim up to GBP 180 per night.", "GBP 180", "nightly hotel limit in London")]),
        "zh": (("陈述：", "数字：", "含义："), [
            ("出差人员应在出差结束后15个工作日内办理报销。", "15个工作日", "报销办理时限"),
            ("试用期员工的年假为每年5天。", "5天", "试用期年假天数")]),
    },
}


@PROVIDERS.register("local")
class LocalProvider(Provider):
    name = "local"
    needs_key = False
    Settings = LocalSettings
    max_in_flight = 1  # one unit at a time: the CPU is the limit, and a unit's fields then finish together

    def call(self, request: Request, key: Key) -> Completion:
        tok, model = load_model(self.settings.model)
        fields = plain_fields(request.json_schema) if self.settings.json_mode != "off" else None
        model_name = self.settings.model or DEFAULT_GGUF
        if not fields:
            text, n_in, n_out, reason = generate(tok, model, request.messages, self.temperature(request),
                                                 self.max_tokens(request), self.settings.timeout)
            return Completion(text=text, finish_reason=reason, tokens_in=n_in, tokens_out=n_out, model=model_name)
        writer = _FieldWriter(tok, model, request, self.temperature(request), self.max_tokens(request),
                              self.settings.timeout, set(getattr(self.settings, "copy_fields", [])),
                              tuple(getattr(self.settings, "languages", ())))
        obj = writer.write(fields)
        return Completion(text=json.dumps(obj, ensure_ascii=False), finish_reason=writer.finish,
                          tokens_in=writer.tokens_in, tokens_out=writer.tokens_out, model=model_name)


class _FieldWriter:
    """Writes one reply field by field: copied fields first (so what the model writes freely is about
    the sentence it chose), pattern fields next, the rest asked for in one conversation."""

    def __init__(self, tok: Any, model: Any, request: Request, temperature: float, limit: int, timeout: float,
                 copy: set[str], languages: tuple[str, ...]) -> None:
        self.tok, self.model, self.request = tok, model, request
        self.temperature, self.limit, self.timeout = temperature, limit, timeout
        self.copy = copy if request.source else set()
        self.languages = languages
        self.convo = _field_prompt(request.messages)
        self.tokens_in = self.tokens_out = 0
        self.finish = "stop"
        self.obj: dict[str, Any] = {}

    def write(self, fields: dict[str, tuple[str, list[str] | None]]) -> dict[str, Any]:
        figures_wanted = any(set(sub) & self.copy for _, sub in fields.values() if sub)
        schema = self.request.json_schema
        for name in sorted(fields, key=lambda n: n not in self.copy):
            kind, sub = fields[name]
            hint = _hint(schema, name)
            if kind == "string" and name in self.copy:
                spans = sentence_spans_of(self.tok, self.request.source, figures_wanted, self.languages)
                self.obj[name] = self.ask(f"Copy the one sentence of the text that matters most{hint}.", spans)
            elif kind == "string" and name in PATTERNS and self.copied():
                self.obj[name] = self.pattern(name, self.copied())
            elif kind == "string":
                self.obj[name] = self.ask(f"Write only the {name}{hint}: plain text, no JSON, no label.")
            elif kind == "lines":
                text = self.ask(f"Write only the {name}{hint}: plain text, one item per line, no JSON.")
                self.obj[name] = [ln.strip().lstrip("-*• ").strip() for ln in text.splitlines() if ln.strip()]
            else:  # one object per list: a small model's list is short, and one good item beats three invented
                self.obj[name] = [self.list_item(name, sub or [])]
        return {n: self.obj[n] for n in fields if n in self.obj}

    def list_item(self, name: str, props: list[str]) -> dict[str, str]:
        copied, item = self.copied(), {}
        for prop in props:
            if prop in self.copy and copied:
                one = name[:-1] if name.endswith("s") else name
                item[prop] = self.ask(f"Copy one {one} ({prop}) from that sentence.",
                                      figure_spans_of(self.tok, copied), FIGURE_TOKENS)
            elif prop in PATTERNS and copied and any(item.get(c) for c in self.copy):
                item[prop] = self.pattern(prop, copied, next(item[c] for c in self.copy if item.get(c)))
            else:
                item[prop] = self.ask(f"In a few words, {prop}{_hint(self.request.json_schema, name, prop)}:",
                                      most=SHORT_TOKENS, first_line=True)
        return item

    def copied(self) -> str:
        return " ".join(v for k, v in self.obj.items() if k in self.copy and isinstance(v, str) and v)

    def ask(self, what: str, spans: Spans | None = None, most: int | None = None, first_line: bool = False) -> str:
        """One chat turn; with `spans`, the reply is copied from them."""
        self.convo.append({"role": "user", "content": what})
        text, n_in, n_out, reason = generate(self.tok, self.model, self.convo, self.temperature, most or self.limit,
                                             self.timeout, copy=spans)
        self.convo.append({"role": "assistant", "content": text})
        text = text.strip()
        if first_line and text:  # a label-like field: its first line is the value, however long the rest
            text, reason = text.splitlines()[0].strip(), "stop"
        return self._count(text, n_in, n_out, reason)

    def pattern(self, field: str, *values: str) -> str:
        """A line of a few-shot pattern; greedy first, and a line that loops ("the full and full with the
        full...") gets sampled retries from seeds derived from the values."""
        labels, shots = PATTERNS[field][detect_language(values[0])]
        vocabulary = statement_vocabulary(self.tok, values[0])
        most = SHORT_TOKENS if len(values) > 1 else QUESTION_TOKENS
        for attempt in range(1 + RETRIES):
            seed = None if attempt == 0 else zlib.crc32(f"{attempt}:{values}".encode())
            text, n_in, n_out, reason = complete_pattern(self.tok, self.model, shots, labels, values, self.timeout,
                                                         most, vocabulary, seed)
            self._count("", n_in, n_out, "stop")
            if reason == "stop":
                break
        return self._count(text, 0, 0, reason)

    def _count(self, text: str, n_in: int, n_out: int, reason: str) -> str:
        self.tokens_in, self.tokens_out = self.tokens_in + n_in, self.tokens_out + n_out
        self.finish = "length" if reason == "length" else self.finish
        return text


def _field_prompt(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The task's own system prompt (its first paragraph, before the JSON output rules) and the chunk."""
    system = [m for m in messages if m["role"] == "system"][:1]
    users = [m for m in messages if m["role"] == "user"]
    convo = [{"role": "system", "content": system[0]["content"].split("\n\n")[0]}] if system else []
    last = users[-1]["content"] if users else ""
    convo.append({"role": "user", "content": f"{last}\n\nI will ask for your reply one part at a time."})
    convo.append({"role": "assistant", "content": "Understood."})
    return convo


def _resolve(schema: dict, spec: dict) -> dict:
    ref = spec.get("$ref", "")
    return schema.get("$defs", {}).get(ref.rsplit("/", 1)[-1], {}) if ref.startswith("#/$defs/") else spec


def _hint(schema: dict | None, name: str, prop: str | None = None) -> str:
    spec = (schema or {}).get("properties", {}).get(name, {})
    if prop is not None:
        spec = _resolve(schema or {}, spec.get("items", {})).get("properties", {}).get(prop, {})
    return f" ({spec['description']})" if spec.get("description") else ""


def plain_fields(schema: dict | None) -> dict[str, tuple[str, list[str] | None]] | None:
    """{field: (kind, sub-fields)} for the fields to write — the required ones when the schema names some —
    when each is a string ("string"), a list of strings ("lines") or a list of objects of strings
    ("objects", with their property names). None when any is something else (then the model writes JSON)."""
    schema = schema or {}
    props = schema.get("properties")
    if not props:
        return None
    wanted = [n for n in props if n in schema.get("required", [])] or list(props)
    out: dict[str, tuple[str, list[str] | None]] = {}
    for name in wanted:
        spec = props[name]
        items = _resolve(schema, spec.get("items") or {})
        if spec.get("type") == "string":
            out[name] = ("string", None)
        elif spec.get("type") == "array" and items.get("type") == "string":
            out[name] = ("lines", None)
        elif (spec.get("type") == "array" and items.get("type") == "object" and items.get("properties")
              and all(p.get("type") == "string" for p in items["properties"].values())):
            out[name] = ("objects", list(items["properties"]))
        else:
            return None
    return out
