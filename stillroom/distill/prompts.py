"""Prompt data (system prompt, user template, few-shot examples) as files, rendered into messages and hashed.

A task's prompt lives in a TOML (or YAML) file next to its module, one table per language. Variables
are `$name` placeholders (string.Template), so JSON braces in prompts need no escaping; unknown
variables are an error when the file is loaded, not a blank in the middle of a run.
"""

from __future__ import annotations

import json
import string
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stillroom.errors import UsageError
from stillroom.ids import content_id

Language = Literal["zh", "en"]
BASE_VARIABLES = ("chunk", "heading", "document")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Example(_Strict):
    chunk: str
    heading: str = ""
    document: str = ""
    output: dict[str, Any]
    why: str = Field("", description="For a bad example: what makes it bad.")


class PromptSet(_Strict):
    system: str
    user: str
    examples: list[Example] = Field(default_factory=list)
    bad_examples: list[Example] = Field(default_factory=list)


class TaskSpec(_Strict):
    """The file format shared by built-in tasks' data files and users' own task files."""

    name: str
    description: str = ""
    zh: PromptSet | None = None
    en: PromptSet | None = None
    output_schema: dict[str, Any] | None = Field(None, description="JSON Schema of the reply (user tasks).")

    def prompt(self, language: Language) -> PromptSet:
        found = getattr(self, language) or self.zh or self.en
        if found is None:
            raise UsageError(f"task {self.name!r} has no prompt — add a [zh] or [en] table with `system` and `user`")
        return found


# The output contract stated the same way for every task; per-language so a Chinese prompt stays Chinese.
_OUTPUT_RULES = {
    "zh": ("只输出一个 JSON 对象，符合下面的 JSON Schema，不要输出其他文字：\n$schema\n"
           "如果这段文字无法据以出题（例如只是目录或版权页），只输出 {\"refused_because\": \"原因\"}。"),
    "en": ("Reply with one JSON object matching this JSON Schema and nothing else:\n$schema\n"
           "If the text gives nothing to ask about (e.g. a table of contents), reply only "
           "{\"refused_because\": \"why\"}."),
}
_BAD_EXAMPLE = {"zh": "反例（不要这样写）：\n$output\n原因：$why", "en": "A bad reply (do not write like this):\n$output\nWhy: $why"}


def load_spec(path: Path) -> TaskSpec:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"{path}: cannot read task file: {e.strerror}") from None
    try:
        data = _parse(path, text)
        return TaskSpec.model_validate(data)
    except ValidationError as e:
        lines = [f"{path}: {len(e.errors())} problem(s) in task file:"]
        lines += [f"  {'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()]
        raise UsageError("\n".join(lines)) from None


def _parse(path: Path, text: str) -> Any:
    if path.suffix in (".yaml", ".yml"):
        import yaml  # only users' YAML task files need it

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise UsageError(f"{path}: not valid YAML: {e}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path}: not valid TOML: {e}") from None


def check_variables(spec: TaskSpec, allowed: tuple[str, ...]) -> None:
    for language in ("zh", "en"):
        prompt: PromptSet | None = getattr(spec, language)
        for field in ("system", "user"):
            text = getattr(prompt, field) if prompt else ""
            unknown = set(string.Template(text).get_identifiers()) - set(allowed)
            if unknown or (text and not string.Template(text).is_valid()):
                raise UsageError(f"task {spec.name!r} [{language}].{field}: unknown or malformed variable(s) "
                                 f"{sorted(unknown) or '($ not followed by a name; write $$ for a dollar)'} — "
                                 f"allowed: {', '.join('$' + a for a in allowed)}")


def render(prompt: PromptSet, language: Language, variables: dict[str, str], schema: dict) -> list[dict]:
    """System prompt (with the output rules and bad examples), then few-shot turns, then the chunk."""
    fill = string.Template
    system = [fill(prompt.system).substitute(variables),
              fill(_OUTPUT_RULES[language]).substitute(schema=json.dumps(schema, ensure_ascii=False))]
    for bad in prompt.bad_examples:
        system.append(fill(_BAD_EXAMPLE[language]).substitute(output=_dump(bad.output), why=bad.why))
    messages = [{"role": "system", "content": "\n\n".join(system)}]
    for ex in prompt.examples:
        shot = {**variables, "chunk": ex.chunk, "heading": ex.heading, "document": ex.document}
        messages.append({"role": "user", "content": fill(prompt.user).substitute(shot)})
        messages.append({"role": "assistant", "content": _dump(ex.output)})
    messages.append({"role": "user", "content": fill(prompt.user).substitute(variables)})
    return messages


def prompt_hash(task: str, language: str, prompt: PromptSet, schema: dict, extra: dict | None = None) -> str:
    """The prompt version: everything that shapes the reply except the chunk itself."""
    return content_id("prm", {"task": task, "language": language, "prompt": prompt.model_dump(), "schema": schema,
                              "extra": extra or {}, "rules": _OUTPUT_RULES[language]}, length=16)


def detect_language(text: str) -> Language:
    """CJK-heavy text gets the Chinese prompt; a few Chinese words in English text do not."""
    cjk = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff")
    letters = sum(1 for ch in text if ch.isalpha())
    return "zh" if letters and cjk / letters > 0.2 else "en"


def _dump(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=1)
