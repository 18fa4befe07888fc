"""Every reply is checked by pydantic against its task's schema before it can become data.

One local repair (code fences, trailing commas — both unambiguous), then one re-ask that quotes the
validation errors. A reply cut off by the length limit or a content filter is a failure, never data;
a reply that still fails is kept as a failed attempt with its raw text. Nothing is pulled out of
prose with regexes: a half-right reply guessed into shape is worse than a recorded failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import BaseModel, ValidationError

from stillroom.distill.provider import Completion, Request

# finish_reason → why the reply is not data. "refusal" is how a provider reports a model's refusal.
CUT_OFF = {"length": "truncated", "max_tokens": "truncated", "content_filter": "content_filter", "refusal": "refused"}

REASK = ("Your reply could not be used:\n{errors}\n"
         "Reply again with only the corrected JSON object (no code fences, no other text).")


@dataclass
class Attempt:
    """One completion and what validation made of it; the runner stores it in `calls`."""

    completion: Completion
    status: str  # ok, invalid, truncated, content_filter, refused
    error: str = ""


@dataclass
class Outcome:
    reply: BaseModel | None
    reason: str | None = None  # None when `reply` is good
    error: str = ""
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def raw(self) -> str:
        return self.attempts[-1].completion.text if self.attempts else ""


def repair(text: str) -> str:
    """Strip one pair of Markdown code fences and drop commas before a closing bracket (outside strings)."""
    body = text.strip()
    if body.startswith("```") and body.endswith("```") and body.count("\n") >= 1:
        body = body[body.index("\n") + 1:-3].strip()
    out: list[str] = []
    in_string = escaped = False
    for ch in body:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "}]":
            while out and out[-1].isspace():
                out.pop()
            if out and out[-1] == ",":
                out.pop()
        out.append(ch)
    return "".join(out)


def parse(text: str, model: type[BaseModel], check: Callable[[Any], list[str]]) -> tuple[Any, str, str]:
    """(reply, failure reason, error text): reply is None unless the text is a valid, checked object."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = json.loads(repair(text))
        except json.JSONDecodeError as e:
            return None, "invalid", f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
    if isinstance(data, dict) and isinstance(data.get("refused_because"), str) and set(data) == {"refused_because"}:
        return None, "refused", data["refused_because"]
    try:
        reply = model.model_validate(data)
    except ValidationError as e:
        lines = [f"- {'.'.join(map(str, err['loc'])) or '(root)'}: {err['msg']}" for err in e.errors()]
        return None, "invalid", "\n".join(lines)
    problems = check(reply)
    if problems:
        return None, "invalid", "\n".join(f"- {p}" for p in problems)
    return reply, "", ""


def complete_validated(complete: Callable[[Request], Completion], request: Request, model: type[BaseModel],
                       check: Callable[[Any], list[str]]) -> Outcome:
    """Ask, check, and re-ask once with the errors. Provider errors propagate to the runner."""
    outcome = Outcome(reply=None)
    for attempt_no in range(2):
        completion = complete(request)
        cut = CUT_OFF.get(completion.finish_reason)
        if cut:
            outcome.attempts.append(Attempt(completion, cut, f"finish_reason={completion.finish_reason}"))
            outcome.reason, outcome.error = cut, f"the reply was cut off (finish_reason={completion.finish_reason})"
            return outcome
        reply, reason, error = parse(completion.text, model, check)
        outcome.attempts.append(Attempt(completion, reason or "ok", error))
        outcome.reply, outcome.reason, outcome.error = reply, reason or None, error
        if reply is not None or reason == "refused":
            return outcome
        request = request.model_copy(update={"messages": [
            *request.messages, {"role": "assistant", "content": completion.text},
            {"role": "user", "content": REASK.format(errors=error)}]})
    return outcome
