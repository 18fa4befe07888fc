"""[train] settings. Owned by the train stage; add fields here (each with a description: it becomes the comment in stillroom.toml)."""

from __future__ import annotations

from pydantic import Field

from stillroom.settings.base import Section


class TrainSettings(Section):
    base_model: str = Field("", description="Base model for `stillroom train`: a Hugging Face id, a folder or a .gguf "
                                            "file; empty means the bundled SmolLM2-135M-Instruct (no download).")
    preset: str = Field("cpu-small", description="Config preset under the train.toml (cpu-small, qwen3-8b-qlora-r16, "
                                                  "qwen3-8b-qlora-r8); a --config file overrides its keys.")
    adapters_dir: str = Field("adapters", description="Where adapters go when --out is not given (relative to the project).")
