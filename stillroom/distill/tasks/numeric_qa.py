"""`numeric_qa`: questions whose answer hinges on exact figures in the chunk, copied with their units."""

from __future__ import annotations

from pydantic import Field

from stillroom.distill.tasks import TASKS, Chunk, ItemDraft, Reply, Task


class Figure(Reply):
    text: str = Field(min_length=1, description="The figure with its unit exactly as written in the text, e.g. 500元 or 3.5%.")
    meaning: str = Field(min_length=1, description="What the figure is (a limit, a date, a count...).")


class NumericReply(Reply):
    question: str = Field(min_length=4)
    answer: str = Field(min_length=1, description="States every figure in `figures`, copied exactly.")
    figures: list[Figure] = Field(min_length=1)


@TASKS.register("numeric_qa")
class NumericQA(Task):
    name = "numeric_qa"
    reply_model = NumericReply
    needs_figures = True

    def check(self, reply: NumericReply, chunk: Chunk) -> list[str]:
        problems = []
        for fig in reply.figures:
            if fig.text not in chunk.text:
                problems.append(f"figure {fig.text!r} does not appear verbatim in the text; copy it exactly")
            if fig.text not in reply.answer:
                problems.append(f"figure {fig.text!r} is missing from the answer; state it exactly as in the text")
        return problems

    def to_items(self, reply: NumericReply, chunk: Chunk) -> list[ItemDraft]:
        figures = [f.model_dump() for f in reply.figures]
        return [ItemDraft.qa(reply.question, reply.answer, {"figures": figures})]
