"""[curate] settings. Owned by the curate stage; add fields here (each with a description: it becomes the comment in stillroom.toml)."""

from __future__ import annotations

import math

from pydantic import Field, field_validator

from stillroom.settings.base import Section

# Our users' own rubric: numeric accuracy 30, completeness 25, clarity 20, consistency with the source 15, format 10.
DEFAULT_WEIGHTS = {"numeric_fidelity": 30.0, "completeness": 25.0, "clarity": 20.0, "grounding": 15.0, "format": 10.0,
                   "refusal": 0.0, "language": 0.0}


class GateSettings(Section):
    """Thresholds of the quality gates `stillroom curate` prints; a failing gate blocks export (unless --force)."""

    json_parse_rate_min: float = Field(
        0.95, ge=0, le=1, description="Items with a JSON Schema (json_task, json_dialog) whose answer is valid under it.")
    required_fields_min: float = Field(0.99, ge=0, le=1, description="Items with a non-empty question and answer.")
    template_hit_rate_min: float = Field(
        0.9, ge=0, le=1, description="Items with a section template (template, worked_problem) using every section, in order.")
    numeric_fidelity_rate_min: float = Field(0.9, ge=0, le=1, description="Items whose every figure is in the source.")
    duplicate_rate_max: float = Field(0.2, ge=0, le=1, description="Items that duplicate a better one (exact or near).")
    refusal_rate_max: float = Field(0.05, ge=0, le=1, description="Items that refuse where an answer was expected.")


class QuotaSettings(Section):
    """The target mix of the exported set. Selection drops the lowest-scoring items to meet it."""

    numeric_min_share: float = Field(0.0, ge=0, le=1, description="Least share of items whose answer holds a figure (e.g. 0.3).")
    task_min_share: dict[str, float] = Field({}, description="Least share per task, e.g. { numeric_qa = 0.2 }.")
    task_max_share: dict[str, float] = Field({}, description="Largest share per task, e.g. { multiturn = 0.2 }.")
    max_document_share: float = Field(
        1.0, gt=0, le=1, description="Largest share of the set from one source document, so one long file does not dominate."
    )

    @field_validator("task_min_share", "task_max_share")
    @classmethod
    def _shares_in_range(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: x for k, x in v.items() if not 0 <= x <= 1}
        if bad:
            raise ValueError(f"shares must be between 0 and 1; fix {bad}")
        return v


class CurateSettings(Section):
    # --- scoring (scoring person) ---
    scorers: list[str] = Field(
        list(DEFAULT_WEIGHTS), description="Scorers to run (see docs/curate-scoring.md); a hard fail from any of them fails the item."
    )
    weights: dict[str, float] = Field(
        dict(DEFAULT_WEIGHTS),
        description="Rubric weights of the overall score; relative, non-negative; scorers left out weigh 0.",
    )
    answer_language: str = Field(
        "auto", description="Language answers must be in: 'zh', 'en', or 'auto' (the question's language)."
    )
    question_min_chars: int = Field(6, ge=1, description="Shorter questions lose clarity points.")
    question_max_chars: int = Field(400, ge=10, description="Longer questions lose clarity points.")
    grounding_unsupported_below: float = Field(
        0.5, ge=0, le=1, description="An answer sentence whose n-gram overlap with the source is below this is listed as unsupported."
    )
    # --- duplicates (scoring person) ---
    dedup_near_threshold: float = Field(
        0.7, gt=0, le=1, description="Estimated Jaccard similarity (character shingles) at which two items are near duplicates."
    )
    dedup_shingle_chars: int = Field(3, ge=2, le=16, description="Characters per shingle for near-duplicate detection.")
    dedup_num_perm: int = Field(64, ge=16, le=512, description="MinHash signature length (more = more exact, slower).")
    # --- review queue, quotas and gates (flow person) ---
    review_below: float = Field(
        0.6, ge=0, le=1, description="Items whose overall score is below this go to the review queue (hard fails always do)."
    )
    audit_fraction: float = Field(
        0.15, ge=0, le=1, description="Share of the other items drawn at random for the audit that estimates their error rate."
    )
    audit_seed: int = Field(0, description="Seed of the audit sample (the same seed draws the same items).")
    score_bands: list[float] = Field(
        [0.8, 0.9], description="Overall-score cut points that, with task and document, stratify the audit sample."
    )
    gates: GateSettings = Field(default_factory=GateSettings, description="Quality gate thresholds, each in [0, 1].")
    quotas: QuotaSettings = Field(default_factory=QuotaSettings, description="Target mix of the exported set.")

    @field_validator("weights")
    @classmethod
    def _weights_sane(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: w for k, w in v.items() if not 0 <= w < math.inf}
        if bad:
            raise ValueError(f"weights must be finite numbers >= 0; fix {bad}")
        total = sum(v.values())
        if total <= 0:
            raise ValueError("weights add up to 0 — give at least one scorer a positive weight")
        if total == math.inf:  # the rubric's sums would overflow
            raise ValueError("weights are too large to add up — use relative weights such as 30, 25, 20")
        return v

    @field_validator("answer_language")
    @classmethod
    def _language_known(cls, v: str) -> str:
        if v not in ("auto", "zh", "en"):
            raise ValueError("answer_language must be 'auto', 'zh' or 'en'")
        return v
