"""`json_dialog`: a conversation with a design assistant whose last answer is a JSON object matching the
project's JSON Schema (settings: json_schema). When the user leaves out a required parameter, the assistant
first asks for it (the follow-up pattern), so the tuned model learns to ask rather than guess."""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from stillroom.distill.tasks import TASKS, Chunk, ItemDraft, Reply
from stillroom.distill.tasks._schema import model_from_schema
from stillroom.distill.tasks.json_task import JsonTask


class DialogTurn(Reply):
    role: Literal["user", "assistant"]
    content: str = Field(min_length=1)


@TASKS.register("json_dialog")
class JsonDialog(JsonTask):
    name = "json_dialog"

    @cached_property
    def _model(self) -> type[BaseModel]:
        answer = model_from_schema(self.answer_schema, "answer")
        return create_model(
            "JsonDialogReply", __base__=Reply,
            pattern=(Literal["follow_up", "direct"],
                     Field(description="follow_up: the user leaves out a required parameter and the assistant asks for it.")),
            turns=(list[DialogTurn], Field(min_length=1, max_length=11, description=(
                "The conversation before the final answer: user first, alternating, ending with the user."))),
            answer=(answer, Field(description="The assistant's final answer: the JSON object, matching the schema.")))

    def check(self, reply: Any, chunk: Chunk) -> list[str]:
        roles = [t.role for t in reply.turns]
        problems = []
        if roles != ["user" if i % 2 == 0 else "assistant" for i in range(len(roles))] or roles[-1] != "user":
            problems.append("turns must alternate user, assistant, user, ... starting and ending with the user "
                            "(the final assistant turn is `answer`)")
        if reply.pattern == "follow_up":
            asks = [t.content for t in reply.turns if t.role == "assistant"]
            if len(roles) < 3 or not any(t.rstrip().endswith(("?", "？")) for t in asks):
                problems.append("a follow_up conversation needs the request, the assistant's clarifying question "
                                "(ending with ?) and the user's missing detail before the answer")
        return problems

    def to_items(self, reply: Any, chunk: Chunk) -> list[ItemDraft]:
        answer = json.dumps(reply.answer.model_dump(exclude_none=True), ensure_ascii=False)
        messages = [t.model_dump() for t in reply.turns] + [{"role": "assistant", "content": answer}]
        return [ItemDraft(messages, {"json_schema": self.answer_schema, "pattern": reply.pattern})]
