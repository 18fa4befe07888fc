"""Per-item eval metrics. Each returns a float in [0, 1] (or a relative error), or None when it does not apply
to the item, so per-task means only count the items a metric is about."""

from __future__ import annotations

import json
import math
import re
from collections import Counter

_REFUSAL = re.compile(r"\b(cannot|can't|can not|unable|outside|not (?:covered|in|able)|no information|don't know|"
                      r"do not know)\b|无法|不能|超出|没有相关|不在.*范围", re.I)
_WORD = re.compile(r"[\u4e00-\u9fff]|[^\W_]+", re.U)  # one token per CJK character, else per word


def tokens(text: str) -> list[str]:
    return [t.casefold() for t in _WORD.findall(text)]


def rouge_l(pred: str, ref: str) -> float:
    """F-measure of the longest common token subsequence."""
    a, b = tokens(pred), tokens(ref)
    if not a or not b:
        return 0.0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    p, r = lcs / len(a), lcs / len(b)
    return 2 * p * r / (p + r)


def bleu(pred: str, ref: str, max_n: int = 4) -> float:
    """Sentence BLEU with add-one smoothing on higher n-grams (short answers otherwise score 0)."""
    a, b = tokens(pred), tokens(ref)
    if not a or not b:
        return 0.0
    logs = []
    for n in range(1, max_n + 1):
        pa = Counter(tuple(a[i:i + n]) for i in range(len(a) - n + 1))
        pb = Counter(tuple(b[i:i + n]) for i in range(len(b) - n + 1))
        hit, total = sum((pa & pb).values()), max(sum(pa.values()), 0)
        smooth = 1 if n > 1 else 0
        if hit + smooth == 0 or total + smooth == 0:
            return 0.0
        logs.append(math.log((hit + smooth) / (total + smooth)))
    brevity = min(0.0, 1 - len(b) / len(a))
    return math.exp(brevity + sum(logs) / max_n)


def key_point_coverage(pred: str, key_points: list[str] | None) -> float | None:
    if not key_points:
        return None
    low = pred.casefold()
    return sum(1 for k in key_points if k.casefold() in low) / len(key_points)


def numeric_match(pred: str, ref: str) -> float | None:
    """1.0 when every figure of the reference answer appears in the prediction, normalised the way curation
    does it (万/亿, %, dates, units); None when the reference has no figures."""
    from stillroom.curate.numbers import find_figures, match_figures

    if not find_figures(ref):
        return None
    return float(all(m.source_span is not None for m in match_figures(ref, pred)))


def template_hit(pred: str, headings: list[str] | None) -> float | None:
    if not headings:
        return None
    return float(all(h in pred for h in headings))


def is_refusal(pred: str) -> bool:
    return bool(_REFUSAL.search(pred))


def refusal_correct(pred: str, should_refuse: bool | None) -> float | None:
    if not should_refuse:
        return None
    return float(is_refusal(pred))


def json_scores(pred: str, ref: str) -> dict[str, float | None]:
    """Parse rate, share of reference fields reproduced, and mean relative error on numeric fields."""
    try:
        want = json.loads(ref)
    except json.JSONDecodeError:
        return {}
    got = _parse_json(pred)
    if not isinstance(want, dict):
        return {"json_parse": float(got is not None)}
    if not isinstance(got, dict):
        return {"json_parse": float(got is not None), "json_field_acc": 0.0}
    ok, errs = 0, []
    for k, v in want.items():
        g = got.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and isinstance(g, (int, float)):
            err = abs(g - v) / max(abs(v), 1e-9)
            errs.append(err)
            ok += err < 1e-6
        else:
            ok += str(g).strip().casefold() == str(v).strip().casefold()
    return {"json_parse": 1.0, "json_field_acc": ok / max(len(want), 1),
            "json_rel_error": sum(errs) / len(errs) if errs else None}


def _parse_json(text: str):
    """Models often wrap JSON in a ```json fence; that still counts as parsed, nothing else is salvaged."""
    body = text.strip()
    fence = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, re.S)
    try:
        return json.loads(fence.group(1) if fence else body)
    except json.JSONDecodeError:
        return None


def score_item(pred: str, ref: str, task: str, meta: dict) -> dict[str, float | None]:
    scores = {"key_points": key_point_coverage(pred, meta.get("key_points")),
              "numeric_em": numeric_match(pred, ref),
              "template_hit": template_hit(pred, meta.get("template")),
              "refusal_acc": refusal_correct(pred, meta.get("refusal")),
              "rouge_l": rouge_l(pred, ref), "bleu": bleu(pred, ref)}
    if task == "json_task" or meta.get("json_schema"):
        scores.update(json_scores(pred, ref))
    return scores
