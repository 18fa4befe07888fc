"""Alpaca: {"instruction", "input", "output"}, plus "system" and "history" ([[q, a], ...]) for multi-turn items,
as LLaMA-Factory's alpaca loader reads them.

The system turns' contents are joined by newlines; the other turns pair up in order (a trailing unpaired turn is
dropped); the last pair is instruction/output, the earlier ones are history. An item without a pair falls back to its
question and answer. The line is built in SQL with the bytes json.dumps(ensure_ascii=False, separators=(",", ":"))
gives: contents stay JSON, so a number or object is written as itself. Missing messages count as no turns, a missing
role or content as null; a turn that is not an object, or a system turn whose content is not text, stops the export
naming the item.
"""

from __future__ import annotations

from stillroom.curate.exporters import EXPORTERS, NOT_A_LIST, Exporter, turns


def _stop(why: str) -> str:
    return f"error('item ' || id || ': {NOT_A_LIST} ({why})')"


# `ms` is every turn, `t` the non-system ones, `n` how many of those pair up; each is bound once by a one-element
# list_transform, so the messages are parsed once per item.
_N = "(len(t) // 2 * 2)"
_PAIR = (f"CASE WHEN {_N} = 0 THEN ',\"instruction\":' || to_json(coalesce(question, '')) "
         "|| ',\"input\":\"\",\"output\":' || to_json(coalesce(answer, '')) "
         f"ELSE ',\"instruction\":' || coalesce(to_json(t[{_N} - 1].content), 'null') || ',\"input\":\"\",\"output\":'"
         f" || coalesce(to_json(t[{_N}].content), 'null') END")
_SYSTEM = ("list_transform([list_filter(ms, lambda m: m.role = 'system')], lambda s: CASE WHEN len(s) = 0 THEN '' "
           "WHEN list_bool_and(list_transform(s, lambda m: coalesce(json_type(m.content), '') = 'VARCHAR')) "
           "THEN ',\"system\":' || to_json(array_to_string(list_transform(s, lambda m: m.content ->> '$'), chr(10))) "
           f"ELSE {_stop('a system turn whose content is not text')} END)[1]")
_HISTORY = (f"CASE WHEN {_N} > 2 THEN ',\"history\":' || to_json(list_transform(range(1, {_N} - 1, 2), "
            "lambda i: [t[i].content, t[i + 1].content])) ELSE '' END")
# as Python's truthiness: no "meta" for null, {}, [], "", 0 or false; json.dumps output that starts {" is an object
# with keys, which skips the slower test for nearly every item
_META = ("CASE WHEN CASE WHEN meta IS NULL THEN false WHEN starts_with(meta::VARCHAR, '{\"') THEN true "
         "WHEN json_type(meta) IN ('BIGINT', 'UBIGINT', 'DOUBLE') THEN meta::DOUBLE <> 0 "
         "ELSE to_json(meta) NOT IN ('{}', '[]', 'null', '\"\"', 'false') END "
         "THEN ',\"meta\":' || to_json(meta) ELSE '' END")
_LINE = (f"'{{\"id\":' || to_json(id) || ',\"task\":' || coalesce(to_json(task), 'null') || {_PAIR} || {_SYSTEM} "
         f"|| {_HISTORY} || {_META} || '}}'")
# a null turn or role may be a turn that is not an object (1, "s", [..]): only then is each turn's type looked up
_NOT_OBJECTS = ("list_bool_or(list_transform(ms, lambda m: m IS NULL OR m.role IS NULL)) AND NOT "
                "list_bool_and(list_transform(json_type(messages, '$[*]'), lambda x: x = 'OBJECT'))")
LINE = (f"list_transform([coalesce({turns('JSON')}, [])], lambda ms: CASE WHEN {_NOT_OBJECTS} "
        f"THEN {_stop('a turn is not an object')} ELSE list_transform("
        f"[list_filter(ms, lambda m: m.role IS DISTINCT FROM 'system')], lambda t: {_LINE})[1] END)[1]")


@EXPORTERS.register("alpaca")
class Alpaca(Exporter):
    line_sql = LINE
