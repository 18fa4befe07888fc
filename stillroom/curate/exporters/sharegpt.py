"""ShareGPT: {"conversations": [{"from": "system"|"human"|"gpt", "value"}, ...]}."""

from __future__ import annotations

from stillroom.curate.exporters import EXPORTERS, TURNS, Exporter, json_line

CONVERSATIONS = (f"list_transform({TURNS}, lambda m: {{'from': CASE m.role WHEN 'user' THEN 'human' "
                 "WHEN 'assistant' THEN 'gpt' ELSE m.role END, 'value': m.content})")


@EXPORTERS.register("sharegpt")
class ShareGPT(Exporter):
    line_sql = json_line(f"'conversations': {CONVERSATIONS}")
