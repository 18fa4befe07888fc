"""The item has the shape its task promised: schema-valid JSON (json_task), the template's sections in order
(template), alternating roles (multiturn), one question and one answer (everything else)."""

from __future__ import annotations

import json
from functools import lru_cache

from pydantic import ValidationError

from stillroom.curate.scorers import SCORERS, ItemView, Score, Scorer
from stillroom.distill.tasks._schema import model_from_schema
from stillroom.errors import UsageError
from stillroom.ids import canonical_json


@SCORERS.register("format")
class Format(Scorer):
    version = 1

    def score(self, item: ItemView) -> Score | None:
        problems = _roles(item.messages, multiturn=item.task == "multiturn")
        if item.task == "json_task" or "json_schema" in item.meta:
            problems += _json(item.answer, item.meta.get("json_schema"))
        if item.meta.get("template") and not item.meta.get("refusal"):
            problems += _template(item.answer, item.meta["template"])
        if not problems:
            return _WELL_FORMED
        return Score(0.0, {"problems": problems}, hard_fail=True)


_WELL_FORMED = Score(1.0, {"problems": []})  # shared by every well-formed item: never mutated


def _roles(messages: list[dict], multiturn: bool) -> list[str]:
    roles = [m.get("role") for m in messages]
    if roles and roles[0] == "system":
        roles = roles[1:]
    if any(r not in ("user", "assistant") for r in roles):
        return [f"unknown or misplaced role among {roles}"]
    if any(not (m.get("content") or "").strip() for m in messages):
        return ["an empty message"]
    expected = ["user", "assistant"] * max(1, len(roles) // 2)
    if roles != expected:
        return [f"roles must alternate user/assistant and end with the assistant; got {roles}"]
    if multiturn and len(roles) < 4:
        return [f"a multiturn item needs at least two exchanges; got {len(roles) // 2}"]
    return []


def _json(answer: str, schema: dict | None) -> list[str]:
    try:
        data = json.loads(answer)
    except (json.JSONDecodeError, TypeError) as e:
        return [f"answer is not valid JSON: {e}"]
    if not schema:
        return []
    try:
        model = _model(canonical_json(schema))
    except UsageError as e:
        return [f"cannot check against the schema: {e}"]
    try:
        model.model_validate(data)
    except ValidationError as e:
        return [f"{'.'.join(map(str, err['loc'])) or 'answer'}: {err['msg']}" for err in e.errors()[:5]]
    return []


@lru_cache(maxsize=64)
def _model(schema_json: str):
    return model_from_schema(json.loads(schema_json), "answer")


def _template(answer: str, sections: list[str]) -> list[str]:
    lines = [line.strip() for line in (answer or "").splitlines()]
    positions = [lines.index(s) if s in lines else -1 for s in sections]
    missing = [s for s, p in zip(sections, positions) if p < 0]
    if missing:
        return [f"template sections missing: {missing}"]
    if positions != sorted(positions):
        return ["template sections out of order"]
    return []
