"""The three wire formats: parse a request into a FakeRequest, write a reply or an error body."""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit


def _tokens(text: str) -> int:
    return len(text) // 4 + 1


def _bearer(headers: dict[str, str]) -> str:
    return headers.get("authorization", "").removeprefix("Bearer ").strip()


class OpenAIWire:
    api = "openai"
    finish = {"truncated": "length"}

    def parse(self, path: str, headers: dict[str, str], body: dict):
        from .server import FakeRequest

        fmt = body.get("response_format") or {}
        schema = (fmt.get("json_schema") or {}).get("schema") if fmt.get("type") == "json_schema" else None
        messages = [{"role": m["role"], "content": m.get("content") or ""} for m in body.get("messages", [])]
        return FakeRequest(self.api, _bearer(headers), body.get("model", ""), messages, schema,
                           fmt.get("type") in ("json_schema", "json_object"), body.get("max_tokens"))

    def reply(self, req, text: str, kind: str) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if kind == "refuse":
            message = {"role": "assistant", "content": None, "refusal": text}
        prompt = sum(_tokens(m["content"]) for m in req.messages)
        return {"id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
                "model": req.model, "choices": [{"index": 0, "message": message,
                                                 "finish_reason": self.finish.get(kind, "stop")}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": _tokens(text),
                          "total_tokens": prompt + _tokens(text)}}

    def error(self, kind: str, retry_after: float | None) -> tuple[int, dict, dict]:
        def body(message: str, type_: str, code: str | None) -> dict:
            return {"error": {"message": message, "type": type_, "param": None, "code": code}}

        if kind == "rate_limit":
            headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
            return 429, headers, body("Rate limit reached for requests", "requests", "rate_limit_exceeded")
        if kind == "quota":
            return 429, {}, body("You exceeded your current quota, please check your plan and billing details.",
                                 "insufficient_quota", "insufficient_quota")
        if kind == "auth":
            return 401, {}, body("Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        return 500, {}, body("The server had an error while processing your request.", "server_error", None)


class ZhipuWire(OpenAIWire):
    api = "zhipu"
    finish = {"truncated": "length", "refuse": "sensitive"}

    def reply(self, req, text: str, kind: str) -> dict[str, Any]:
        out = super().reply(req, text, "ok")
        out["choices"][0]["finish_reason"] = self.finish.get(kind, "stop")
        out["request_id"] = out.pop("id")
        del out["object"]
        return out

    def error(self, kind: str, retry_after: float | None) -> tuple[int, dict, dict]:
        status, code, message = {
            "rate_limit": (429, "1302", "您当前使用该API的并发数过高，请降低并发，或联系客服增加限额。"),
            "quota": (429, "1113", "您的账户已欠费，请充值后重试。"),
            "auth": (401, "1000", "身份验证失败。"),
        }.get(kind, (500, "500", "Internal Error"))
        headers = {} if retry_after is None or kind != "rate_limit" else {"retry-after": f"{retry_after:g}"}
        return status, headers, {"error": {"code": code, "message": message}}


class GeminiWire:
    api = "gemini"
    finish = {"truncated": "MAX_TOKENS", "refuse": "SAFETY"}

    def parse(self, path: str, headers: dict[str, str], body: dict):
        from .server import FakeRequest

        url = urlsplit(path)
        model = url.path.split("/models/", 1)[-1].split(":", 1)[0]
        key = headers.get("x-goog-api-key") or parse_qs(url.query).get("key", [""])[0]
        messages = []
        if sys_inst := body.get("systemInstruction"):
            messages.append({"role": "system", "content": "".join(p.get("text", "") for p in sys_inst["parts"])})
        for c in body.get("contents", []):
            messages.append({"role": "assistant" if c.get("role") == "model" else "user",
                             "content": "".join(p.get("text", "") for p in c.get("parts", []))})
        cfg = body.get("generationConfig") or {}
        schema = cfg.get("responseJsonSchema") or cfg.get("responseSchema")
        return FakeRequest(self.api, key, model, messages, schema,
                           cfg.get("responseMimeType") == "application/json", cfg.get("maxOutputTokens"))

    def reply(self, req, text: str, kind: str) -> dict[str, Any]:
        candidate: dict[str, Any] = {"index": 0, "finishReason": self.finish.get(kind, "STOP")}
        if kind != "refuse":
            candidate["content"] = {"role": "model", "parts": [{"text": text}]}
        prompt = sum(_tokens(m["content"]) for m in req.messages)
        return {"candidates": [candidate], "modelVersion": req.model,
                "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": _tokens(text),
                                  "totalTokenCount": prompt + _tokens(text)}}

    def error(self, kind: str, retry_after: float | None) -> tuple[int, dict, dict]:
        def body(code: int, status: str, message: str, details: list) -> dict:
            return {"error": {"code": code, "message": message, "status": status, "details": details}}

        def quota(quota_id: str) -> dict:
            return {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                                    "quotaId": quota_id}]}

        if kind == "rate_limit":
            details = [quota("GenerateRequestsPerMinutePerProjectPerModel-FreeTier")]
            if retry_after is not None:
                details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after:g}s"})
            return 429, {}, body(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota.", details)
        if kind == "quota":
            return 429, {}, body(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota.",
                                 [quota("GenerateRequestsPerDayPerProjectPerModel-FreeTier")])
        if kind == "auth":
            return 400, {}, body(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                                 [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                                   "domain": "googleapis.com"}])
        return 500, {}, body(500, "INTERNAL", "An internal error has occurred.", [])


def codec_for(path: str):
    if path.startswith("/v1/chat/completions"):
        return OpenAIWire()
    if path.startswith("/api/paas/v4/chat/completions"):
        return ZhipuWire()
    if ":generateContent" in path:
        return GeminiWire()
    return None
