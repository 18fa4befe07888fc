"""`multiturn`: a conversation grounded in the chunk, often the follow-up pattern — the user leaves out a
parameter, the assistant asks for it, the user gives it, the assistant resolves."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from stillroom.distill.tasks import TASKS, Chunk, ItemDraft, Reply, Task


class Turn(Reply):
    role: Literal["user", "assistant"]
    content: str = Field(min_length=1)


class MultiturnReply(Reply):
    pattern: Literal["follow_up", "direct"] = Field(description="follow_up: the assistant first asks for a missing parameter.")
    turns: list[Turn] = Field(min_length=2, max_length=12)


@TASKS.register("multiturn")
class Multiturn(Task):
    name = "multiturn"
    reply_model = MultiturnReply

    def check(self, reply: MultiturnReply, chunk: Chunk) -> list[str]:
        roles = [t.role for t in reply.turns]
        expected = ["user" if i % 2 == 0 else "assistant" for i in range(len(roles))]
        problems = []
        if roles != expected or roles[-1] != "assistant":
            problems.append("turns must alternate user, assistant, user, ... starting with user and ending with assistant")
        if reply.pattern == "follow_up" and len(roles) < 4:
            problems.append("a follow_up conversation needs at least 4 turns: question, clarifying question, "
                            "the missing detail, answer")
        return problems

    def to_items(self, reply: MultiturnReply, chunk: Chunk) -> list[ItemDraft]:
        return [ItemDraft([t.model_dump() for t in reply.turns], {"pattern": reply.pattern})]
