"""Training config: one pydantic model, a comment per knob. A train.toml or a preset sets any subset."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from stillroom.errors import ConfigError, UnknownName
from stillroom.settings.base import Section

PRESETS_DIR = Path(__file__).parent / "presets"


class TrainConfig(Section):
    # LoRA: the adapter's size and where it attaches.
    lora_r: int = Field(8, ge=1, description="LoRA rank: capacity of the adapter; 8–16 is plenty for a few thousand items.")
    lora_alpha: int = Field(16, ge=1, description="LoRA alpha: the update is scaled by alpha/r; 2×r is the usual choice.")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input; guards small datasets against memorising.")
    target_modules: list[str] = Field(["q_proj", "k_proj", "v_proj", "o_proj"],
                                      description="Linear layers that get an adapter (names inside each decoder block).")
    # Optimisation.
    learning_rate: float = Field(2e-4, gt=0, description="Peak learning rate after warmup.")
    scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = Field(
        "cosine", description="How the learning rate falls after warmup.")
    warmup_steps: int = Field(0, ge=0, description="Optimizer steps of linear warmup (wins over warmup_ratio when > 0).")
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="Warmup as a share of all optimizer steps, used when warmup_steps is 0.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay on the LoRA weights.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradients are clipped to this norm; stops one odd batch from wrecking a run.")
    epochs: float = Field(3, gt=0, description="Passes over the train split (fractions allowed).")
    batch_size: int = Field(4, ge=1, description="Examples per micro-batch; they are packed into one row, so no padding.")
    gradient_accumulation: int = Field(1, ge=1, description="Micro-batches per optimizer step (effective batch = batch_size × this × processes).")
    max_length: int = Field(1024, ge=16, description="Tokens per example; longer examples are cut and those left with no answer tokens are dropped.")
    seed: int = Field(42, description="Seeds data order, LoRA init and dropout: the same seed gives the same run.")
    # Bookkeeping.
    eval_every: int = Field(50, ge=0, description="Optimizer steps between validation-loss measurements (0: only at the end).")
    checkpoint_every: int = Field(100, ge=0, description="Optimizer steps between checkpoints for --resume (0: none).")
    keep_checkpoints: int = Field(2, ge=1, description="Newest checkpoints kept on disk; older ones are deleted.")
    log_every: int = Field(10, ge=1, description="Optimizer steps between progress lines.")
    # Precision and memory.
    quantization: Literal["auto", "nf4", "none"] = Field(
        "auto", description="auto: QLoRA (4-bit NF4, double quantisation) on CUDA with bitsandbytes, else plain LoRA; nf4: require it.")
    dtype: Literal["auto", "bfloat16", "float32"] = Field(
        "auto", description="Compute dtype: auto is bfloat16 on CUDA/MPS and float32 on CPU (CPU bf16 matmuls are slow).")
    gradient_checkpointing: bool = Field(True, description="Recompute activations in backward: ~30% slower, far less memory.")
    enable_thinking: bool = Field(False, description="Qwen3-style templates: render with the thinking block on (off trains direct answers).")
    # Evaluation generation.
    eval_max_new_tokens: int = Field(256, ge=1, description="Longest answer `stillroom eval` generates per item.")


def load_config(path: Path | None = None, preset: str | None = None, **overrides) -> TrainConfig:
    """Preset first, then the file, then explicit overrides: the most specific wins."""
    data: dict = {}
    if preset:
        data.update(_read_toml(preset_path(preset)))
    if path:
        data.update(_read_toml(path))
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as e:
        lines = [f"{path or preset or 'train config'}: {len(e.errors())} invalid setting(s):"]
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                lines.append(f"  {key}: unknown key; allowed: {', '.join(TrainConfig.model_fields)}")
            else:
                lines.append(f"  {key}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("\n".join(lines)) from None


def preset_path(name: str) -> Path:
    path = PRESETS_DIR / f"{name}.toml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in PRESETS_DIR.glob("*.toml")))
        raise UnknownName(f"unknown preset {name!r}; known: {known}")
    return path


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found — pass an existing train.toml or a preset name") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def config_toml(cfg: TrainConfig) -> str:
    """The config as a commented train.toml (what `stillroom train --print-config` shows)."""
    from stillroom.settings import _toml_value

    out = []
    for key, field in TrainConfig.model_fields.items():
        out += [f"# {field.description}", f"{key} = {_toml_value(getattr(cfg, key))}"]
    return "\n".join(out) + "\n"
