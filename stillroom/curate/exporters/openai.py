"""OpenAI chat fine-tuning format: {"messages": [{"role", "content"}, ...]}."""

from __future__ import annotations

from stillroom.curate.exporters import EXPORTERS, TURNS, Exporter, json_line

# role and content only: whatever else a turn carries stays out of the training file
MESSAGES = f"list_transform({TURNS}, lambda m: {{'role': m.role, 'content': m.content}})"


@EXPORTERS.register("openai")
class OpenAIChat(Exporter):
    line_sql = json_line(f"'messages': {MESSAGES}")
