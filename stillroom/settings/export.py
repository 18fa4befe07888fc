"""[export] settings. Owned by the export stage; add fields here (each with a description: it becomes the comment in stillroom.toml)."""

from __future__ import annotations

from pydantic import Field, field_validator

from stillroom.settings.base import Section


class ExportSettings(Section):
    split: list[float] = Field(
        [0.8, 0.1, 0.1], description="train, val, test shares; split by source document, so no document is in two splits."
    )
    seed: int = Field(0, description="Seed that assigns documents to splits (the same seed gives the same snapshot).")
    batch_size: int = Field(5000, ge=1, description="Items read from the store per batch while writing a snapshot.")

    @field_validator("split")
    @classmethod
    def _split_sane(cls, v: list[float]) -> list[float]:
        if len(v) != 3 or any(x < 0 for x in v) or not 0.99 <= sum(v) <= 1.01:
            raise ValueError(f"split must be three non-negative shares adding up to 1 (train, val, test); got {v}")
        return v
