"""LLaMA-Factory: OpenAI-style messages plus a ready dataset_info.json.

Its sharegpt loader expects from/value keys unless told otherwise; messages that use role/content need
the `tags` mapping below — the most common cause of LLaMA-Factory load errors when it is missing.
"""

from __future__ import annotations

from stillroom.curate.exporters import EXPORTERS
from stillroom.curate.exporters.openai import OpenAIChat

TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
        "system_tag": "system"}


@EXPORTERS.register("llamafactory")
class LlamaFactory(OpenAIChat):
    def extra_files(self, splits: dict[str, str]) -> dict:
        info = {f"stillroom_{name}": {"file_name": file, "formatting": "sharegpt", "columns": {"messages": "messages"},
                                      "tags": TAGS} for name, file in splits.items()}
        return {"dataset_info.json": info}
