"""Google Gemini through the official `google-genai` SDK, with its JSON mode and response schema."""

from __future__ import annotations

from typing import Any

from stillroom.distill.provider import PROVIDERS, Completion, Key, Provider, ProviderCallError, Request
from stillroom.distill.providers._clients import ClientCache

_FILTERED = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}


@PROVIDERS.register("gemini")
class GeminiProvider(Provider):
    name = "gemini"
    key_env_vars = ("GEMINI_API_KEYS", "GEMINI_API_KEY", "GOOGLE_API_KEY")

    def __init__(self, settings) -> None:
        super().__init__(settings)
        from google import genai
        from google.genai import errors, types

        self._types, self._errors = types, errors
        # attempts=1: the router retries, on another key; the SDK would retry on the same one.
        opts = types.HttpOptions(base_url=settings.base_url or None, timeout=int(settings.timeout * 1000),
                                 retry_options=types.HttpRetryOptions(attempts=1))
        self._clients = ClientCache(lambda secret: genai.Client(api_key=secret, http_options=opts))
        self._timeouts, self._transport = _httpx_errors()

    def _config(self, request: Request) -> Any:
        system = "\n\n".join(m["content"] for m in self.messages(request) if m["role"] == "system")
        cfg: dict[str, Any] = {"system_instruction": system or None, "temperature": self.temperature(request),
                               "max_output_tokens": self.max_tokens(request)}
        if request.json_schema is not None and self.settings.json_mode != "off":
            cfg["response_mime_type"] = "application/json"
            if self.settings.json_mode == "schema":
                cfg["response_json_schema"] = request.json_schema
        return self._types.GenerateContentConfig(**cfg)

    def call(self, request: Request, key: Key) -> Completion:
        t = self._types
        contents = [t.Content(role="model" if m["role"] == "assistant" else "user", parts=[t.Part(text=m["content"])])
                    for m in request.messages if m["role"] != "system"]
        config, client = self._config(request), self._clients.get(key.secret)
        try:
            r = client.models.generate_content(model=self.settings.model, contents=contents, config=config)
        except self._errors.APIError as e:
            raise _api_error(e) from None
        except self._timeouts:
            raise ProviderCallError("timeout", f"no reply within {self.settings.timeout:g}s") from None
        except self._transport as e:
            raise ProviderCallError("server", f"connection failed: {type(e).__name__}") from None
        except ValueError as e:  # a 200 whose body is not the API's JSON (a proxy's HTML page, say)
            raise ProviderCallError("server", f"unreadable reply: {type(e).__name__}") from None
        usage = r.usage_metadata
        tokens = {"tokens_in": (usage.prompt_token_count or 0) if usage else 0,
                  "tokens_out": (usage.candidates_token_count or 0) if usage else 0}
        if not r.candidates:
            return Completion(text="", finish_reason="content_filter", model=self.settings.model, **tokens)
        cand = r.candidates[0]
        reason = cand.finish_reason.name if cand.finish_reason else "STOP"
        text = "".join(p.text or "" for p in (cand.content.parts or [])) if cand.content else ""
        finish = {"STOP": "stop", "MAX_TOKENS": "length"}.get(reason) or (
            "content_filter" if reason in _FILTERED else reason.lower())
        return Completion(text=text, finish_reason=finish, model=r.model_version or self.settings.model, **tokens)


def _httpx_errors() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """google-genai runs on httpx or its fork httpx2, whichever is installed; catch both."""
    mods = []
    for name in ("httpx", "httpx2"):
        try:
            mods.append(__import__(name))
        except ImportError:
            pass
    return tuple(m.TimeoutException for m in mods), tuple(m.TransportError for m in mods)


def _api_error(e: Any) -> ProviderCallError:
    details = ((e.details or {}).get("error") or {}).get("details") or [] if isinstance(e.details, dict) else []
    info = {d.get("@type", "").rsplit(".", 1)[-1]: d for d in details if isinstance(d, dict)}
    if e.code == 429:
        quota_ids = [v.get("quotaId", "") for v in info.get("QuotaFailure", {}).get("violations", [])]
        if any("PerDay" in q for q in quota_ids):
            return ProviderCallError("quota", f"RESOURCE_EXHAUSTED: daily quota ({', '.join(quota_ids)})")
        delay = info.get("RetryInfo", {}).get("retryDelay", "")
        return ProviderCallError("rate_limited", "RESOURCE_EXHAUSTED", float(delay[:-1]) if delay.endswith("s") else None)
    if e.code in (401, 403) or info.get("ErrorInfo", {}).get("reason") == "API_KEY_INVALID":
        return ProviderCallError("auth", f"HTTP {e.code} {e.status}: key rejected")
    if e.code == 504:
        return ProviderCallError("timeout", "HTTP 504 DEADLINE_EXCEEDED")
    if e.code >= 500:
        return ProviderCallError("server", f"HTTP {e.code} {e.status}")
    return ProviderCallError("bad_request", f"HTTP {e.code} {e.status}: {e.message}"[:300])
