"""Text with marked spans, and small SVG charts, as plain data the templates escape.

Nothing here builds HTML strings from item text: templates receive (text, css class) pieces and
Jinja's autoescape makes `<script>` or `onerror=` in an item show up as text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Piece:
    text: str
    cls: str = ""
    title: str = ""


def marked(text: str, spans: list[tuple[int, int, str, str]]) -> list[Piece]:
    """Cut `text` into pieces at (start, end, css class, title) spans.

    Spans may overlap (a figure inside a supporting sentence): a piece covered by several carries all
    their classes and titles, so the template never has to nest marks.
    """
    spans = [(max(s, 0), min(e, len(text)), c, t) for s, e, c, t in spans if min(e, len(text)) > max(s, 0)]
    cuts = sorted({0, len(text), *(s for s, *_ in spans), *(e for _, e, *_ in spans)})
    out: list[Piece] = []
    for a, b in zip(cuts, cuts[1:]):
        over = [(c, t) for s, e, c, t in spans if s <= a and b <= e]
        cls = " ".join(dict.fromkeys(c for c, _ in over))
        title = "; ".join(dict.fromkeys(t for _, t in over if t))
        if out and (out[-1].cls, out[-1].title) == (cls, title):
            out[-1] = Piece(out[-1].text + text[a:b], cls, title)
        else:
            out.append(Piece(text[a:b], cls, title))
    return out


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    x: float
    y: float
    width: float
    height: float


def bars(data: list[tuple[str, float]], width: int = 360, height: int = 120) -> list[Bar]:
    """Vertical bars scaled into a width × height box (labels drawn by the template)."""
    if not data:
        return []
    top = max(v for _, v in data) or 1.0
    step = width / len(data)
    out = []
    for i, (label, value) in enumerate(data):
        h = (height - 16) * value / top
        out.append(Bar(label, value, i * step + 2, height - 14 - h, max(step - 4, 1), h))
    return out


def histogram(values: list[float], n_bins: int = 10) -> list[tuple[str, float]]:
    """Counts of scores in [0, 1] in equal bins, labelled by their lower edge."""
    counts = [0] * n_bins
    for v in values:
        counts[min(int(v * n_bins), n_bins - 1)] += 1
    return [(f"{i / n_bins:.1f}", float(c)) for i, c in enumerate(counts)]


# Shown elsewhere in the item view (figures) or only noise for a reviewer (the weights).
_QUIET_EVIDENCE = {"figures", "weights"}


def reasons(evidence: object) -> str:
    """A scorer's evidence (or a run's summary) as one short line: `problems: too short; coverage: 0.42`."""
    if isinstance(evidence, str) and evidence.startswith("{"):
        try:
            evidence = json.loads(evidence)
        except ValueError:
            pass
    if not isinstance(evidence, dict):
        return "" if evidence is None else str(evidence)
    parts = []
    for key, value in evidence.items():
        if key in _QUIET_EVIDENCE or value is None or value is False or value in ([], {}, ""):
            continue
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value[:5])
        elif isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in list(value.items())[:6])
        elif isinstance(value, float):
            value = f"{value:.2f}"
        parts.append(f"{key.replace('_', ' ')}: {value}")
    line = "; ".join(parts)
    return line if len(line) <= 300 else line[:299] + "…"
