"""`qa`: one question a reader of the document would ask, answered from the chunk alone."""

from __future__ import annotations

from pydantic import Field

from stillroom.distill.tasks import TASKS, Chunk, ItemDraft, Reply, Task


class QAReply(Reply):
    question: str = Field(min_length=4, description="A question answerable from the text alone.")
    answer: str = Field(min_length=1, description="The answer, grounded in the text.")
    key_points: list[str] = Field(default_factory=list, description="The facts from the text the answer rests on.")


@TASKS.register("qa")
class QA(Task):
    name = "qa"
    reply_model = QAReply

    def to_items(self, reply: QAReply, chunk: Chunk) -> list[ItemDraft]:
        return [ItemDraft.qa(reply.question, reply.answer, {"key_points": reply.key_points})]
