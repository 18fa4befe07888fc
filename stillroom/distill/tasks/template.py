"""`template`: answers that follow the user's section template, with the key points a correct answer states (kept
in the item's meta, as qa does, for curation's completeness check and the eval's key-point coverage), plus a
refusal for an out-of-scope question."""

from __future__ import annotations

from pydantic import Field

from stillroom.distill.tasks import TASKS, Chunk, ItemDraft, Reply, Task


class TemplateReply(Reply):
    question: str = Field(min_length=4)
    answer: str = Field(min_length=1, description="Uses every section heading of the template, in order, each on its own line.")
    out_of_scope_question: str = Field(min_length=4, description="A related question the text cannot answer.")
    refusal: str = Field(min_length=1, description="A polite answer saying it is outside what the documents cover.")
    key_points: list[str] = Field(default_factory=list, description=(
        "Short phrases a correct answer must contain (the facts or results it rests on), each copied from the answer."))


@TASKS.register("template")
class Template(Task):
    name = "template"
    reply_model = TemplateReply
    extra_variables = ("sections",)

    def variables(self, chunk: Chunk) -> dict[str, str]:
        return {"sections": "\n".join(self.settings.template_sections)}

    def check(self, reply: TemplateReply, chunk: Chunk) -> list[str]:
        lines = [line.strip() for line in reply.answer.splitlines()]
        found = [s for s in self.settings.template_sections if s in lines]
        if found != self.settings.template_sections or \
                [lines.index(s) for s in found] != sorted(lines.index(s) for s in found):
            return [f"the answer must contain these section headings, each on its own line, in this order: "
                    f"{' / '.join(self.settings.template_sections)}"]
        if any(s in reply.refusal for s in self.settings.template_sections):
            return ["the refusal must be a short plain answer, without the section headings"]
        return []

    def to_items(self, reply: TemplateReply, chunk: Chunk) -> list[ItemDraft]:
        meta = {"template": list(self.settings.template_sections), "key_points": list(reply.key_points)}
        items = [ItemDraft.qa(reply.question, reply.answer, meta)]
        if self.settings.template_refusals:
            items.append(ItemDraft.qa(reply.out_of_scope_question, reply.refusal, {"refusal": True}))
        return items
