"""Alpaca: {"instruction", "input", "output"}, plus "system" and "history" ([[q, a], ...]) for multi-turn items,
as LLaMA-Factory's alpaca loader reads them."""

from __future__ import annotations

from stillroom.curate.exporters import EXPORTERS, Exporter, with_ids


@EXPORTERS.register("alpaca")
class Alpaca(Exporter):
    def record(self, item: dict) -> dict:
        msgs = item["messages"]
        system = [m["content"] for m in msgs if m["role"] == "system"]
        turns = [m for m in msgs if m["role"] != "system"]
        pairs = [(turns[i]["content"], turns[i + 1]["content"]) for i in range(0, len(turns) - 1, 2)]
        *history, (instruction, output) = pairs or [(item["question"] or "", item["answer"] or "")]
        body = {"instruction": instruction, "input": "", "output": output}
        if system:
            body["system"] = "\n".join(system)
        if history:
            body["history"] = [list(p) for p in history]
        return with_ids(item, body)
