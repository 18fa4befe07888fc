"""Replies a careful model would give: built from the chunk, so they pass the task's checks and curation's.

`FakeLLMServer(reply=grounded_reply)` answers every built-in task (known by its reply schema's title) with
questions about the chunk and answers that copy its sentences and figures verbatim; any other schema (a
user's task file, a JSON Schema of design parameters) is filled from the chunk by `instance`. The recipe
tests run whole projects against it, so what comes out must survive scoring, gates and export.
"""

from __future__ import annotations

import json
import re
import zlib
from typing import Any

from .server import FakeRequest

_REASK = "Your reply could not be used"
_SENTENCE = re.compile(r"[^。！？!?]+?(?:[。！？!?]|\.(?=\s|$)|$)", re.S)
_FIGURE = re.compile(r"\d+(?:[.,]\d+)*(?:\s*%|\s*[A-Za-z]{1,5}\b|[\u4e00-\u9fff])?")
_REFUSAL = {"zh": "抱歉，现有材料没有涉及“{q}”，我无法据此回答，请咨询相关负责人。",
            "en": "I'm sorry, the documents do not cover that ({q}), so I cannot answer it from them."}


def grounded_reply(req: FakeRequest) -> str:
    schema = req.json_schema or {}
    system = next((m["content"] for m in req.messages if m["role"] == "system"), "")
    chunk = _chunk(req.messages)
    build = _BUILDERS.get(schema.get("title", ""))
    data = build(chunk, schema, system) if build else _top_level(chunk, schema)
    return json.dumps(data, ensure_ascii=False)


def _chunk(messages: list[dict]) -> str:
    """The last rendered user turn (not a re-ask), after its Document/Section header."""
    last = next(m["content"] for m in reversed(messages) if m["role"] == "user" and not m["content"].startswith(_REASK))
    return last.split("\n\n", 1)[-1].strip()


def _zh(text: str) -> bool:
    return sum("\u4e00" <= c <= "\u9fff" for c in text) > len(text) * 0.2


def sentences(text: str) -> list[str]:
    """The chunk's sentences: wrapped lines joined, a list line kept as one, headings (short, unpunctuated) left out."""
    blocks = []
    for para in re.split(r"\n\s*\n", text):
        lines = [line.strip() for line in para.splitlines() if line.strip()]
        if any(line.startswith("- ") for line in lines):
            blocks += lines
        elif lines:
            blocks.append(("" if _zh(para) else " ").join(lines))
    body = [b for b in blocks if b[-1] in "。！？!?.；;" or len(b) > 40 or b.startswith("- ")] or blocks
    found = [s.strip() for b in body for s in _SENTENCE.findall(b)]
    return [s for s in found if len(s) > 3] or [text.strip()]


def _topic(sentence: str) -> str:
    """The sentence's opening words, as the subject of a question."""
    words = re.split(r"[，,：:；;（(]", sentence, maxsplit=1)[0].strip(" 。.")
    return words[:24] if _zh(sentence) else " ".join(words.split()[:8])


def _question(sentence: str) -> str:
    topic = _topic(sentence)
    return f"关于“{topic}”，文件是怎么规定的？" if _zh(sentence) else f"What does the text say about {topic}?"


def _figure_sentence(chunk: str) -> tuple[str, str]:
    """The first sentence stating a figure, and the figure as written (numeric_qa only gets chunks with one)."""
    for s in sentences(chunk):
        if m := _FIGURE.search(s):
            return s, m.group().strip()
    return sentences(chunk)[0], ""


def _qa(chunk: str, schema: dict, system: str) -> dict:
    first = sentences(chunk)[0]
    return {"question": _question(first), "answer": " ".join(sentences(chunk)[:2]), "key_points": [_topic(first)]}


def _numeric(chunk: str, schema: dict, system: str) -> dict:
    sentence, figure = _figure_sentence(chunk)
    return {"question": _question(sentence), "answer": sentence,
            "figures": [{"text": figure, "meaning": "the figure the answer rests on"}]}


def _multiturn(chunk: str, schema: dict, system: str) -> dict:
    first = sentences(chunk)[0]
    return {"pattern": "direct", "turns": [{"role": "user", "content": _question(first)},
                                           {"role": "assistant", "content": " ".join(sentences(chunk)[:2])}]}


def _template(chunk: str, schema: dict, system: str) -> dict:
    # the task's prompt lists the sections (`$sections`), one per line
    sections = [line.strip() for line in system.splitlines() if line.strip().startswith("#")]
    parts = (sentences(chunk) * len(sections))[:len(sections)]
    first = sentences(chunk)[0]
    language = "zh" if _zh(chunk) else "en"
    other = f"{_topic(first)}的历史沿革" if language == "zh" else f"the history of {_topic(first)}"
    reply = {"question": _question(first), "answer": "\n".join(f"{h}\n{p}" for h, p in zip(sections, parts)),
             "out_of_scope_question": (f"{other}是怎样的？" if language == "zh" else f"What is {other}?"),
             "refusal": _REFUSAL[language].format(q=other)}
    if "key_points" in schema.get("properties", {}):
        figure = _FIGURE.search(reply["answer"])
        reply["key_points"] = [_topic(parts[0])] + ([figure.group()] if figure else [])
    return reply


def _json_dialog(chunk: str, schema: dict, system: str) -> dict:
    """Every other chunk gets the follow-up pattern: the user's first request leaves the details out."""
    answer = instance(schema["properties"]["answer"], chunk, schema)
    first = sentences(chunk)[0]
    if zlib.crc32(chunk.encode()) % 2:
        turns = [{"role": "user", "content": f"I need a design for this: {_topic(first)}."},
                 {"role": "assistant", "content": "Which requirements apply: band, loss and rejection?"},
                 {"role": "user", "content": " ".join(sentences(chunk))}]
        return {"pattern": "follow_up", "turns": turns, "answer": answer}
    return {"pattern": "direct", "turns": [{"role": "user", "content": " ".join(sentences(chunk))}], "answer": answer}


def _top_level(chunk: str, schema: dict) -> Any:
    """A user's task: `question` and a string `answer` get a question and the chunk's sentences."""
    data = instance(schema, chunk, schema) if schema else {}
    props = schema.get("properties", {})
    if isinstance(data, dict) and "question" in props:
        data["question"] = _question(sentences(chunk)[0])
        if props.get("answer", {}).get("type") == "string":
            data["answer"] = " ".join(sentences(chunk)[:2])
    return data


def instance(node: dict, chunk: str, root: dict, name: str = "") -> Any:
    """A value valid under `node`, taken from the chunk where it can be: an enum option the chunk names,
    the number that follows the field's name in the chunk (`center_frequency_mhz` ← "Center frequency: 2442")."""
    if "$ref" in node:
        target: Any = root
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        return instance(target, chunk, root, name)
    if "const" in node:
        return node["const"]
    if "enum" in node:  # an option named on the field's own line, else anywhere in the chunk
        for text in (_line_for(name, chunk), chunk):
            hit = next((v for v in node["enum"] if re.search(rf"\b{re.escape(str(v))}\b", text or "", re.I)), None)
            if hit is not None:
                return hit
        return node["enum"][0]
    options = node.get("anyOf") or node.get("oneOf")
    if options:
        return instance(next((o for o in options if o.get("type") != "null"), options[0]), chunk, root, name)
    kind = node.get("type")
    kind = next((t for t in kind if t != "null"), "null") if isinstance(kind, list) else kind
    if kind == "object" or "properties" in node:
        return {k: instance(v, chunk, root, k) for k, v in node.get("properties", {}).items()
                if k in node.get("required", []) or _number_for(k, chunk) is not None or v.get("type") == "string"}
    if kind == "array":
        return [instance(node.get("items", {"type": "string"}), chunk, root, name)] * max(1, node.get("minItems", 1))
    if kind in ("number", "integer"):
        found = _number_for(name, chunk)
        value = found if found is not None else node.get("minimum", node.get("exclusiveMinimum", 0) + 1)
        return int(value) if kind == "integer" else value
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _topic(sentences(chunk)[0])


def _line_for(field: str, chunk: str) -> str | None:
    """The first line of the chunk naming every word of the field (unit suffixes such as _mhz dropped)."""
    words = [w for w in field.lower().split("_") if len(w) > 2 and w not in ("mhz", "ghz", "ohm", "min", "max")]
    return next((line for line in chunk.splitlines() if words and all(w in line.casefold() for w in words)), None)


def _number_for(field: str, chunk: str) -> float | None:
    """The first number on the field's line, after the field's name."""
    line = _line_for(field, chunk)
    name_end = line.find(":") if line and ":" in line else 0
    m = re.search(r"-?\d+(?:\.\d+)?", line[name_end:]) if line else None
    if m is None:
        return None
    value = float(m.group())
    return int(value) if value.is_integer() else value


_BUILDERS = {"QAReply": _qa, "NumericReply": _numeric, "MultiturnReply": _multiturn, "TemplateReply": _template,
             "WorkedProblemReply": _template, "JsonDialogReply": _json_dialog}
