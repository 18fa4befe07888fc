"""[distill] settings. Owned by the distill stage; add fields here (each with a description: it becomes the comment in stillroom.toml)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from stillroom.settings.base import Section


# --- providers (the providers person's part) ---
class ProviderSettings(Section):
    """One provider's connection and budget; the same keys for every provider."""

    base_url: str = Field("", description="Server to call; empty: the SDK's default. Any OpenAI-compatible server "
                                          "(vLLM, Ollama, llama.cpp, DeepSeek, DashScope) works through `openai`.")
    model: str = Field("", description="Model name; for `local`, a HF folder or .gguf file (empty: bundled SmolLM2-135M).")
    temperature: float = Field(0.1, ge=0, le=2, description="Sampling temperature.")
    max_tokens: int = Field(1024, ge=1, description="Most tokens per reply.")
    timeout: float = Field(60.0, gt=0, description="Seconds before one call counts as timed out.")
    rpm: int = Field(60, ge=0, description="Requests per minute per key (client-side budget; 0: unlimited).")
    tpm: int = Field(0, ge=0, description="Tokens per minute per key (0: unlimited).")
    json_mode: Literal["schema", "object", "off"] = Field(
        "schema", description="Structured output: schema (send the task's JSON Schema), object (JSON mode only), off.")


class LocalSettings(ProviderSettings):
    """The in-process model's settings: a provider's, plus how much of the reply it may write freely."""

    copy_fields: list[str] = Field(
        default_factory=lambda: ["answer", "text"],
        description="Reply fields the local model copies instead of writing: an answer is decoded as one whole "
                    "sentence of the chunk, a list item's `text` (a figure) as a number, with its unit, from that "
                    "answer. A 135M model invents figures; a copied one cannot. [] lets a larger local model write "
                    "every field itself.")
    languages: list[str] = Field(default_factory=lambda: ["en"],
                                 description="Languages the local model writes well (en, zh): when a chunk has "
                                             "sentences in one of them, its answer is copied from those. "
                                             "SmolLM2-135M writes no usable Chinese; [] for a bilingual model.")


class ProvidersSettings(Section):
    openai: ProviderSettings = Field(default_factory=lambda: ProviderSettings(model="gpt-4o-mini"),
                                     description="OpenAI or any OpenAI-compatible server.")
    gemini: ProviderSettings = Field(default_factory=lambda: ProviderSettings(model="gemini-2.0-flash", rpm=15),
                                     description="Google Gemini (google-genai).")
    zhipu: ProviderSettings = Field(default_factory=lambda: ProviderSettings(model="glm-4-flash", json_mode="object"),
                                    description="Zhipu GLM (zhipuai).")
    local: LocalSettings = Field(default_factory=lambda: LocalSettings(rpm=0, max_tokens=160, timeout=600),
                                    description="A model run in-process with transformers; needs no keys.")
    keys_file: str = Field("", description="Key file outside the project (TOML `openai = [\"k1\"]` or `OPENAI_API_KEYS=k1,k2` "
                                           "lines); STILLROOM_KEYS_FILE also names one. Keys never go in this file.")
    max_attempts: int = Field(6, ge=1, description="Tries per request on timeouts and 5xx before it fails.")
    backoff_s: float = Field(1.0, ge=0, description="First backoff after a 429 without Retry-After, a timeout or a 5xx; "
                                                    "doubles per failure, with jitter.")
    backoff_max_s: float = Field(60.0, ge=0, description="Longest backoff.")
    quota_reset_s: float = Field(0.0, ge=0, description="Seconds after which a quota-exhausted key is tried again (0: not this run).")


class DistillSettings(Section):
    # --- runner and tasks (the runner's part) ---
    provider: str = Field("", description="Provider for distill runs (openai, gemini, zhipu, local); empty: the first "
                                          "of `fallback` whose keys are set, else local, which needs no keys.")
    fallback: list[str] = Field(default_factory=list, description="Providers that take over, in order, while every key "
                                                                  "of the current one is cooling or dead, e.g. [\"zhipu\", \"openai\"].")
    tasks: list[str] = Field(default_factory=lambda: ["qa", "numeric_qa"],
                             description="Tasks to generate: qa, numeric_qa, multiturn, template, json_task, json_dialog, "
                                         "worked_problem, or a name from task_files.")
    task_files: list[str] = Field(default_factory=list, description="Your own tasks, one TOML or YAML file each "
                                                                    "(paths relative to the project; see docs/distill.md).")
    target_mix: dict[str, float] = Field(default_factory=lambda: {"numeric_qa": 0.3},
                                         description="Least share of units per task; chunks with figures go to "
                                                     "numeric_qa until its share is met. Tasks not named share the rest.")
    language: Literal["auto", "zh", "en"] = Field("auto", description="Prompt language; auto follows each chunk's text.")
    samples_per_chunk: int = Field(1, ge=1, le=100, description="Work units per chunk (each may use a different task).")
    concurrency: int = Field(8, ge=1, le=512, description="Most units in flight at once; the router lowers it on 429s.")
    template_sections: list[str] = Field(default_factory=lambda: ["### 结论", "### 推导", "### 检查"],
                                         description="Sections every `template` answer must have, in this order.")
    template_refusals: bool = Field(True, description="`template` also writes one out-of-scope question with a refusal per unit.")
    json_schema: str = Field("", description="JSON Schema file that `json_task` answers must match (path relative to the project).")
    price_per_mtok: dict[str, list[float]] = Field(
        default_factory=lambda: {"openai": [0.15, 0.6], "gemini": [0.1, 0.4], "zhipu": [0.0, 0.0], "local": [0.0, 0.0]},
        description="USD per million tokens [in, out] for cost estimates, by provider (defaults: its default model) "
                    "or by model (quote names with dots: \"gemini-2.5-pro\" = [1.25, 10.0]). Check your price list.")
    # --- providers (the providers person's part) ---
    providers: ProvidersSettings = Field(default_factory=ProvidersSettings,
                                         description="Per-provider model, server, budgets and retry policy.")
