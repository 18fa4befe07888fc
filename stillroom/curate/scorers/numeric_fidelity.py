"""Every figure in the answer must be in the source chunk. One that is not is a hard fail: invented numbers
are the failure our users fear most, and no amount of fluency makes up for one."""

from __future__ import annotations

from stillroom.curate.numbers import match_figures
from stillroom.curate.scorers import SCORERS, ItemView, Score, Scorer


@SCORERS.register("numeric_fidelity")
class NumericFidelity(Scorer):
    version = 1

    def score(self, item: ItemView) -> Score | None:
        if item.source_missing:
            return Score(0.0, {"error": "source chunk is gone — re-ingest its document or reject the item"}, True)
        if item.source is None:
            return None  # an imported item without a source: nothing to check against
        matches = match_figures(item.assistant_text, item.source)
        if not matches:
            return Score(1.0, {"figures": []})
        figures = [{
            "text": m.figure.text, "kind": m.figure.kind, "unit": m.figure.unit,
            "value": list(m.figure.value) if isinstance(m.figure.value, tuple) else m.figure.value,
            "span": [m.figure.start, m.figure.end],
            "source": m.source_text if m.found else "not in source",
            "source_span": list(m.source_span) if m.found else None,
        } for m in matches]
        missing = [f["text"] for f in figures if f["source_span"] is None]
        found = len(matches) - len(missing)
        return Score(found / len(matches), {"figures": figures, "not_in_source": missing}, hard_fail=bool(missing))
