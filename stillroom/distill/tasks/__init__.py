"""Tasks: what a chunk becomes. Each built-in is one module here plus its prompt file (zh and en) next to it.

A task declares its reply as a pydantic model (sent to the provider as JSON Schema), renders the
messages for a chunk, checks what a schema cannot (a figure copied exactly, turns alternating), and
turns a checked reply into items. A user's task is one TOML/YAML file (see `UserTask`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from stillroom.distill import prompts
from stillroom.distill.prompts import BASE_VARIABLES, Language, TaskSpec
from stillroom.errors import UnknownName, UsageError
from stillroom.registry import Registry
from stillroom.settings.distill import DistillSettings

TASKS: Registry[type["Task"]] = Registry("task", modules=tuple(
    f"stillroom.distill.tasks.{name}"
    for name in ("qa", "numeric_qa", "multiturn", "template", "json_task", "json_dialog", "worked_problem")))


class Reply(BaseModel):
    """Base of every task's reply model: unknown keys are a validation error the re-ask can name."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Chunk:
    id: str
    text: str
    heading_path: str = ""
    document: str = ""
    has_figures: bool = False
    n_tokens: int = 0


@dataclass
class ItemDraft:
    messages: list[dict]
    meta: dict = field(default_factory=dict)

    @classmethod
    def qa(cls, question: str, answer: str, meta: dict | None = None) -> "ItemDraft":
        return cls([{"role": "user", "content": question}, {"role": "assistant", "content": answer}], meta or {})


class Task:
    """A built-in task: subclass, set `reply_model`, register with `@TASKS.register(name)`."""

    name: ClassVar[str]
    reply_model: ClassVar[type[BaseModel]]
    needs_figures: ClassVar[bool] = False  # only chunks that contain figures can feed it
    extra_variables: ClassVar[tuple[str, ...]] = ()

    def __init__(self, spec: TaskSpec, settings: DistillSettings, root: Path) -> None:
        self.spec, self.settings, self.root = spec, settings, root
        prompts.check_variables(spec, BASE_VARIABLES + self.extra_variables)

    @classmethod
    def builtin(cls, settings: DistillSettings, root: Path) -> "Task":
        path = Path(__file__).with_name(f"{cls.name}.toml")
        return cls(prompts.load_spec(path), settings, root)

    def model(self) -> type[BaseModel]:
        return self.reply_model

    @cached_property
    def json_schema(self) -> dict:
        return self.model().model_json_schema()

    def variables(self, chunk: Chunk) -> dict[str, str]:
        """Task-specific `$names` on top of chunk, heading and document."""
        return {}

    def language(self, chunk: Chunk) -> Language:
        fixed = self.settings.language
        return prompts.detect_language(chunk.text) if fixed == "auto" else fixed

    def render(self, chunk: Chunk) -> list[dict]:
        lang = self.language(chunk)
        values = {"chunk": chunk.text, "heading": chunk.heading_path, "document": chunk.document,
                  **self.variables(chunk)}
        return prompts.render(self.spec.prompt(lang), lang, values, self.json_schema)

    def prompt_hash(self, chunk: Chunk) -> str:
        lang = self.language(chunk)
        return prompts.prompt_hash(self.name, lang, self.spec.prompt(lang), self.json_schema, self.variables(chunk))

    def check(self, reply: Any, chunk: Chunk) -> list[str]:
        """Problems the schema cannot see; each becomes a line of the re-ask."""
        return []

    def to_items(self, reply: Any, chunk: Chunk) -> list[ItemDraft]:
        raise NotImplementedError

    def example_replies(self) -> list[dict]:
        """Few-shot outputs, for the test that every example matches its own schema."""
        return [ex.output for p in (self.spec.zh, self.spec.en) if p for ex in p.examples]


class UserTask(Task):
    """A task declared in one file. Its reply must hold `question` and `answer` (a string, or an object
    the file's `output_schema` describes); any other reply fields are kept in the item's meta."""

    needs_figures = False

    def __init__(self, spec: TaskSpec, settings: DistillSettings, root: Path) -> None:
        super().__init__(spec, settings, root)
        self.name = spec.name
        from stillroom.distill.tasks._schema import model_from_schema

        schema = spec.output_schema or {"type": "object", "required": ["question", "answer"], "additionalProperties": False,
                                        "properties": {"question": {"type": "string"}, "answer": {"type": "string"}}}
        if not {"question", "answer"} <= set(schema.get("required", [])) & set(schema.get("properties", {})):
            raise UsageError(f"task {spec.name!r}: output_schema must require `question` and `answer`")
        self._model = model_from_schema(schema, spec.name)

    def model(self) -> type[BaseModel]:
        return self._model

    def to_items(self, reply: Any, chunk: Chunk) -> list[ItemDraft]:
        data = reply.model_dump(exclude_none=True)
        question, answer = data.pop("question"), data.pop("answer")
        if not isinstance(answer, str):
            answer = json.dumps(answer, ensure_ascii=False)
        return [ItemDraft.qa(question, answer, data)]


def load_tasks(names: list[str], settings: DistillSettings, root: Path) -> dict[str, Task]:
    """The named tasks, built-ins and the project's task files alike; an unknown name lists all known ones."""
    user = {}
    for rel in settings.task_files:
        spec = prompts.load_spec((root / rel).resolve())
        if spec.name in TASKS.names():
            raise UsageError(f"{rel}: task name {spec.name!r} is taken by a built-in task — rename it")
        user[spec.name] = spec
    known = sorted(TASKS.names() + list(user))
    out: dict[str, Task] = {}
    for name in names:
        if name in user:
            out[name] = UserTask(user[name], settings, root)
        elif name in TASKS.names():
            out[name] = TASKS.get(name).builtin(settings, root)
        else:
            raise UnknownName(f"unknown task {name!r}; known: {', '.join(known)}")
    return out
