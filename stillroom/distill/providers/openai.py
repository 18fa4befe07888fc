"""OpenAI and every OpenAI-compatible server (vLLM, Ollama, llama.cpp, DeepSeek, DashScope) via `base_url`."""

from __future__ import annotations

from typing import Any

from stillroom.distill.provider import PROVIDERS, Completion, Key, Provider, ProviderCallError, Request, retry_after_header
from stillroom.distill.providers._clients import ClientCache


@PROVIDERS.register("openai")
class OpenAIProvider(Provider):
    name = "openai"
    key_env_vars = ("OPENAI_API_KEYS", "OPENAI_API_KEY")

    def __init__(self, settings) -> None:
        super().__init__(settings)
        import openai

        self._sdk = openai
        self._clients = ClientCache(lambda secret: openai.OpenAI(
            api_key=secret, base_url=settings.base_url or None, max_retries=0, timeout=settings.timeout))

    def _response_format(self, request: Request) -> dict[str, Any] | None:
        if request.json_schema is None or self.settings.json_mode == "off":
            return None
        if self.settings.json_mode == "object":
            return {"type": "json_object"}
        return {"type": "json_schema",
                "json_schema": {"name": request.schema_name, "schema": request.json_schema, "strict": False}}

    def call(self, request: Request, key: Key) -> Completion:
        sdk, extra = self._sdk, {}
        if (fmt := self._response_format(request)) is not None:
            extra["response_format"] = fmt
        try:
            r = self._clients.get(key.secret).chat.completions.create(
                model=self.settings.model, messages=self.messages(request), temperature=self.temperature(request),
                max_tokens=self.max_tokens(request), **extra)
        except sdk.APITimeoutError:
            raise ProviderCallError("timeout", f"no reply within {self.settings.timeout:g}s") from None
        except sdk.APIConnectionError as e:
            raise ProviderCallError("server", f"connection failed: {type(e.__cause__).__name__}") from None
        except sdk.APIStatusError as e:
            raise _status_error(e) from None
        except sdk.APIError as e:  # a 200 whose body the SDK could not read (a proxy's HTML page, say)
            raise ProviderCallError("server", f"unreadable reply: {type(e).__name__}") from None
        if not getattr(r, "choices", None):  # the SDK hands back a non-JSON body as a plain string
            raise ProviderCallError("server", "unreadable reply: not the API's JSON")
        choice = r.choices[0]
        text, reason = choice.message.content or "", choice.finish_reason or "stop"
        if getattr(choice.message, "refusal", None):
            text, reason = choice.message.refusal, "refusal"
        usage = r.usage
        return Completion(text=text, finish_reason=reason, model=r.model or self.settings.model,
                          tokens_in=usage.prompt_tokens if usage else 0,
                          tokens_out=usage.completion_tokens if usage else 0)


def _status_error(e: Any) -> ProviderCallError:
    status, code = e.status_code, getattr(e, "code", None)
    if status == 429 and code == "insufficient_quota":
        return ProviderCallError("quota", "insufficient_quota: the account is out of credit")
    if status == 429:
        return ProviderCallError("rate_limited", f"HTTP 429 {code or ''}".strip(), retry_after_header(e.response.headers))
    if status in (401, 403):
        # The server's message echoes part of the key, so it is not repeated.
        return ProviderCallError("auth", f"HTTP {status}: key rejected")
    if status >= 500 or status in (408, 409):
        return ProviderCallError("server", f"HTTP {status}")
    return ProviderCallError("bad_request", f"HTTP {status}: {getattr(e, 'message', '')}"[:300])
