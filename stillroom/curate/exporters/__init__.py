"""Snapshot formats: one small module each, registered in EXPORTERS.

An exporter says how one item becomes one record. The fast way is `line_sql`: a DuckDB expression
over the item columns (id, task, messages and meta as JSON, question, answer) that builds the whole
JSON line, so a million records are made in vectorised SQL, not a Python loop. The simple way is
`record(item)` in Python (used when `line_sql` is None). A format with its own file type (Parquet)
overrides `write`; `extra_files` adds files beside the splits (LLaMA-Factory's dataset_info.json).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from stillroom.curate.arrow_text import utf8_data
from stillroom.registry import Registry

EXPORTERS: Registry[type["Exporter"]] = Registry("export format", modules=tuple(
    f"stillroom.curate.exporters.{name}" for name in ("alpaca", "sharegpt", "openai", "llamafactory", "parquet")))

BASE_COLUMNS = "id, task, messages::VARCHAR AS messages, meta::VARCHAR AS meta, question, answer"

# Each turn's role and content as text (a number or object as its JSON), the messages parsed once per item;
# a turn is then read as `m.role`, `m.content` inside list_transform, which keeps a null turn as nulls. Messages that
# are not a list stop the export with a message naming the item (`NOT_A_LIST` marks it for export.py).
NOT_A_LIST = "messages are not a JSON list of turns"


def turns(content: str = "VARCHAR") -> str:
    """SQL for the parsed turns, each content read as `content`: VARCHAR (a number or object as its JSON text), or
    JSON (kept as itself, so that to_json writes it as json.dumps would)."""
    return ("CASE WHEN coalesce(json_type(messages), 'NULL') IN ('ARRAY', 'NULL') "
            f"THEN from_json(messages, '[{{\"role\": \"VARCHAR\", \"content\": \"{content}\"}}]') "
            f"ELSE error('item ' || id || ': {NOT_A_LIST}') END")


TURNS = turns()

# to_json writes nine control characters as \u001F where json.dumps (and a `record` format) writes \u001f
_UPPER_ESCAPES = ("000B", "000E", "000F", "001A", "001B", "001C", "001D", "001E", "001F")


def lowercase_escapes(line: str) -> str:
    r"""SQL for `line` (a JSON line) with json.dumps's lowercase \u escapes. Only a line holding \u00 is rewritten; its
    escaped backslashes (\\) are set aside first (as chr(1), which to_json never writes raw), so that text such as a
    literal backslash followed by u001F is left as it is."""
    fixed = "replace(j, '\\\\', chr(1))"
    for code in _UPPER_ESCAPES:
        fixed = f"replace({fixed}, '\\u{code}', '\\u{code.lower()}')"
    return (f"list_transform([{line}], lambda j: CASE WHEN contains(j, '\\u00') "
            f"THEN replace({fixed}, chr(1), '\\\\') ELSE j END)[1]")


class Exporter:
    """Subclass, give `line_sql` or implement `record`, register with @EXPORTERS.register(name)."""

    suffix = ".jsonl"
    line_sql: str | None = None

    @property
    def projection(self) -> str:
        """What the store is asked for: the finished line (with json.dumps's escapes), or the item columns for
        `record`/`write`."""
        return f"{lowercase_escapes(self.line_sql)} AS line" if self.line_sql else BASE_COLUMNS

    def record(self, item: dict) -> dict:
        raise NotImplementedError

    def write(self, path: Path, batches: Iterable[Any]) -> int:
        """JSON Lines from Arrow record batches; the same items give the same bytes, whatever the batch size."""
        n = 0
        with open(path, "wb") as f:
            for batch in batches:
                if not batch.num_rows:
                    continue
                if self.line_sql:
                    f.write(_utf8_lines(batch.column(0)))
                else:
                    f.write("".join(json.dumps(self.record(item), ensure_ascii=False, separators=(",", ":")) + "\n"
                                    for item in items_of(batch)).encode("utf-8"))
                n += batch.num_rows
        return n

    def extra_files(self, splits: dict[str, str]) -> dict[str, Any]:
        """Files beside the splits (name → JSON-able content); `splits` maps split name → file name."""
        return {}


def _utf8_lines(column: Any) -> memoryview:
    """The strings of an Arrow column, each followed by a newline, as the UTF-8 bytes Arrow already holds."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if column.type not in (pa.string(), pa.large_string()):
        column = column.cast(pa.large_string())
    return utf8_data(pc.binary_join_element_wise(column, "", "\n"))


def items_of(batch: Any) -> list[dict]:
    cols = batch.to_pydict()
    return [{"id": i, "task": t, "messages": json.loads(m), "meta": json.loads(x) if x else None,
             "question": q, "answer": a}
            for i, t, m, x, q, a in zip(cols["id"], cols["task"], cols["messages"], cols["meta"], cols["question"],
                                        cols["answer"])]


def with_ids(item: dict, body: dict) -> dict:
    """Every record, whatever the format, carries id and task (and meta when there is any)."""
    out = {"id": item["id"], "task": item["task"], **body}
    if item.get("meta"):
        out["meta"] = item["meta"]
    return out


def json_line(body: str) -> str:
    """SQL for a line with id, task, the fields in `body` (SQL struct entries) and meta when there is any."""
    return (f"CASE WHEN meta IS NULL OR meta::VARCHAR IN ('{{}}', 'null') THEN to_json({{'id': id, 'task': task, {body}}}) "
            f"ELSE to_json({{'id': id, 'task': task, {body}, 'meta': meta}}) END")
