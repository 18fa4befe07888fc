"""`worked_problem`: a calculation exercise set from the chunk's quantities and solved in the template's sections
(default `### 结论 / ### 推导 / ### 检查`), with the key points a correct solution must state, plus a refusal
for an out-of-scope question. Trained beside `template` (concept answers), it gives a course two task types."""

from __future__ import annotations

from pydantic import Field

from stillroom.distill.tasks import TASKS, Chunk
from stillroom.distill.tasks.template import Template, TemplateReply


class WorkedProblemReply(TemplateReply):
    key_points: list[str] = Field(min_length=1, max_length=6, description=(
        "Short phrases a correct solution must contain (the law or formula used, the result with its unit), "
        "each copied from the answer."))


@TASKS.register("worked_problem")
class WorkedProblem(Template):
    name = "worked_problem"
    reply_model = WorkedProblemReply
    needs_figures = True  # a calculation needs given quantities

    def check(self, reply: WorkedProblemReply, chunk: Chunk) -> list[str]:
        missing = [k for k in reply.key_points if k not in reply.answer]
        problems = [f"key point {k!r} does not appear in the answer; copy each key point from the answer"
                    for k in missing]
        return super().check(reply, chunk) + problems
