"""The one interface every LLM provider implements: one SDK call in, one `Completion` or one
`ProviderCallError` out. Keys, retries, rate limits and fallback live in `keys.py` and `router.py`,
so a provider file stays small and knows nothing about them."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from stillroom.errors import StillroomError
from stillroom.registry import Registry
from stillroom.settings.distill import ProviderSettings

SCHEMA_HINT = "Reply with one JSON object that matches this JSON Schema:"

ErrorKind = Literal["rate_limited", "quota", "auth", "timeout", "server", "bad_request"]

PROVIDERS: Registry[type["Provider"]] = Registry("provider", modules=(
    "stillroom.distill.providers.openai",
    "stillroom.distill.providers.gemini",
    "stillroom.distill.providers.zhipu",
    "stillroom.distill.providers.local",
))


class Request(BaseModel):
    """What the runner asks for. `temperature`/`max_tokens` left at None take the provider's settings."""

    model_config = ConfigDict(extra="forbid")

    messages: list[dict[str, str]] = Field(description="[{role: system|user|assistant, content}]")
    json_schema: dict[str, Any] | None = None
    schema_name: str = "reply"
    source: str = Field("", description="The text the reply must rest on (the chunk). Remote providers ignore it; "
                                        "the local model copies answers from it.")
    temperature: float | None = None
    max_tokens: int | None = None

    def estimated_tokens(self, max_tokens: int) -> int:
        """A budget guess before the call: ~3 characters a token (CJK runs denser, English sparser)."""
        chars = sum(len(m.get("content", "")) for m in self.messages)
        return chars // 3 + 1 + (self.max_tokens or max_tokens)


class Completion(BaseModel):
    """One reply. `finish_reason` is "stop", "length", "content_filter", "refusal" or what the server said."""

    text: str
    finish_reason: str
    tokens_in: int = 0
    tokens_out: int = 0
    model: str = ""
    provider: str = ""
    key_alias: str = ""
    latency_ms: float = 0.0


class ProviderCallError(StillroomError):
    """One failed call, sorted into the few kinds the key pool acts on. Never carries a key."""

    def __init__(self, kind: ErrorKind, message: str, retry_after: float | None = None) -> None:
        self.kind, self.message, self.retry_after = kind, message, retry_after
        super().__init__(f"{kind}: {message}")


@dataclass(frozen=True)
class Key:
    """A key and where it came from. `repr` shows the alias only, so a stray log line leaks nothing."""

    alias: str
    secret: str
    source: str

    def __repr__(self) -> str:
        return f"Key({self.alias})"

    __str__ = __repr__


class Provider(ABC):
    """Subclass, set `name` and `key_env_vars`, implement `call`, register with `@PROVIDERS.register(name)`.

    `call` makes exactly one SDK call with the SDK's own retries off (the router retries, on another
    key), and maps SDK errors to `ProviderCallError`. It must be safe to call from many threads.
    """

    name: ClassVar[str]
    key_env_vars: ClassVar[tuple[str, ...]] = ()
    needs_key: ClassVar[bool] = True
    takes_schema: ClassVar[bool] = True  # False: JSON mode only, so json_mode "schema" acts as "object"
    Settings: ClassVar[type[ProviderSettings]] = ProviderSettings
    max_in_flight: ClassVar[int] = 0  # calls at once, whatever [distill] concurrency says (0: no cap of its own)

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings

    @abstractmethod
    def call(self, request: Request, key: Key) -> Completion: ...

    def temperature(self, request: Request) -> float:
        return self.settings.temperature if request.temperature is None else request.temperature

    def max_tokens(self, request: Request) -> int:
        return request.max_tokens or self.settings.max_tokens

    def messages(self, request: Request) -> list[dict[str, str]]:
        """The messages to send. A server with JSON mode but no schema support (json_mode = "object")
        or a provider without schemas gets the schema in the system message, so the model still
        knows the shape to write."""
        mode = self.settings.json_mode
        if request.json_schema is None or mode == "off" or (mode == "schema" and self.takes_schema):
            return request.messages
        hint = f"{SCHEMA_HINT}\n{json.dumps(request.json_schema, ensure_ascii=False)}"
        if request.messages and request.messages[0]["role"] == "system":
            first = request.messages[0]
            return [{**first, "content": f"{first['content']}\n\n{hint}"}, *request.messages[1:]]
        return [{"role": "system", "content": hint}, *request.messages]


def retry_after_header(headers: Any) -> float | None:
    """Seconds from Retry-After / retry-after-ms; None when absent or an HTTP date we cannot trust."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    try:
        return float(value) if value else None
    except ValueError:
        return None
