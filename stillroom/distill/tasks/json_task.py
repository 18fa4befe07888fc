"""`json_task`: the answer is a JSON object that must match the project's JSON Schema (settings: json_schema)."""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

from pydantic import BaseModel, Field, create_model

from stillroom.distill.tasks import TASKS, Chunk, ItemDraft, Reply, Task
from stillroom.distill.tasks._schema import model_from_schema
from stillroom.errors import UsageError


@TASKS.register("json_task")
class JsonTask(Task):
    name = "json_task"
    reply_model = Reply  # replaced per project by `model()`: the answer's shape comes from the user's schema

    @cached_property
    def answer_schema(self) -> dict:
        if not self.settings.json_schema:
            raise UsageError("json_task needs a JSON Schema for its answers — set [distill] json_schema = "
                             "\"path/to/schema.json\" in stillroom.toml")
        path = (self.root / self.settings.json_schema).resolve()
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise UsageError(f"{path}: cannot read the json_task schema: {e.strerror}") from None
        except json.JSONDecodeError as e:
            raise UsageError(f"{path}: not valid JSON: {e}") from None

    @cached_property
    def _model(self) -> type[BaseModel]:
        answer = model_from_schema(self.answer_schema, "answer")
        return create_model("JsonTaskReply", __base__=Reply,
                            question=(str, Field(min_length=4, description="The request the answer fulfils.")),
                            answer=(answer, Field(description="The JSON object, matching the schema.")))

    def model(self) -> type[BaseModel]:
        return self._model

    def to_items(self, reply: Any, chunk: Chunk) -> list[ItemDraft]:
        answer = json.dumps(reply.answer.model_dump(exclude_none=True), ensure_ascii=False)
        return [ItemDraft.qa(reply.question, answer, {"json_schema": self.answer_schema})]
