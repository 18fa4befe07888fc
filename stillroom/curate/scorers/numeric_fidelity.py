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
        figures, missing = [], []
        for m in matches:  # one pass, each attribute read once: a million items each have a few figures
            f, span = m.figure, m.source_span
            figures.append({"text": f.text, "kind": f.kind, "unit": f.unit,
                            "value": list(f.value) if type(f.value) is tuple else f.value, "span": [f.start, f.end],
                            "source": "not in source" if span is None else m.source_text,
                            "source_span": None if span is None else list(span)})
            if span is None:
                missing.append(f.text)
        return Score((len(matches) - len(missing)) / len(matches), {"figures": figures, "not_in_source": missing},
                     hard_fail=bool(missing))
