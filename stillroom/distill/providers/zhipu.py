"""Zhipu GLM through the official `zhipuai` SDK (JSON mode: `response_format` json_object)."""

from __future__ import annotations

from typing import Any

from stillroom.distill.provider import PROVIDERS, Completion, Key, Provider, ProviderCallError, Request, retry_after_header
from stillroom.distill.providers._clients import ClientCache

# Zhipu puts the reason in a numeric code: https://open.bigmodel.cn/dev/api/error-code/error-code-v4
_QUOTA = {"1113", "1304", "1308", "1309", "1310"}  # in arrears, daily or package limits used up
_AUTH = {"1000", "1001", "1002", "1003", "1004", "1110", "1111", "1112", "1120"}
_RATE = {"1302", "1303", "1305"}
_FILTERED = {"1301"}


@PROVIDERS.register("zhipu")
class ZhipuProvider(Provider):
    name = "zhipu"
    key_env_vars = ("ZHIPUAI_API_KEYS", "ZHIPUAI_API_KEY")
    takes_schema = False

    def __init__(self, settings) -> None:
        super().__init__(settings)
        import zhipuai

        self._sdk = zhipuai
        self._clients = ClientCache(lambda secret: zhipuai.ZhipuAI(
            api_key=secret, base_url=settings.base_url or None, max_retries=0, timeout=settings.timeout))

    def call(self, request: Request, key: Key) -> Completion:
        sdk, extra = self._sdk, {}
        if request.json_schema is not None and self.settings.json_mode != "off":
            extra["response_format"] = {"type": "json_object"}  # Zhipu has JSON mode, not schemas
        try:
            r = self._clients.get(key.secret).chat.completions.create(
                model=self.settings.model, messages=self.messages(request), temperature=self.temperature(request),
                max_tokens=self.max_tokens(request), **extra)
        except sdk.APITimeoutError:
            raise ProviderCallError("timeout", f"no reply within {self.settings.timeout:g}s") from None
        except sdk.APIConnectionError:
            raise ProviderCallError("server", "connection failed") from None
        except sdk.APIStatusError as e:
            error = _status_error(e)
            if error is None:
                return Completion(text="", finish_reason="content_filter", model=self.settings.model)
            raise error from None
        except sdk.ZhipuAIError as e:  # a 200 whose body the SDK could not read
            raise ProviderCallError("server", f"unreadable reply: {type(e).__name__}") from None
        if not getattr(r, "choices", None):  # the SDK hands back a non-JSON body as a plain string
            raise ProviderCallError("server", "unreadable reply: not the API's JSON")
        choice = r.choices[0]
        reason = {"sensitive": "content_filter"}.get(choice.finish_reason or "stop", choice.finish_reason or "stop")
        return Completion(text=choice.message.content or "", finish_reason=reason, model=r.model or self.settings.model,
                          tokens_in=r.usage.prompt_tokens or 0, tokens_out=r.usage.completion_tokens or 0)


def _status_error(e: Any) -> ProviderCallError | None:
    """None: the content filter (code 1301) refused, which is an answer, not a failure of the key."""
    try:
        err = e.response.json().get("error") or {}
    except ValueError:
        err = {}
    code, status = str(err.get("code", "")), e.status_code
    if code in _FILTERED:
        return None
    if code in _QUOTA:
        return ProviderCallError("quota", f"Zhipu {code}: balance or package used up")
    if code in _AUTH or status in (401, 403):
        return ProviderCallError("auth", f"HTTP {status} Zhipu {code}: key rejected")
    if code in _RATE or status == 429:
        return ProviderCallError("rate_limited", f"Zhipu {code or status}", retry_after_header(e.response.headers))
    if status >= 500:
        return ProviderCallError("server", f"HTTP {status}")
    return ProviderCallError("bad_request", f"HTTP {status} Zhipu {code}: {err.get('message', '')}"[:300])
