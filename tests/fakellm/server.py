"""A fake LLM server on 127.0.0.1 speaking three wire formats, scriptable per key.

- OpenAI:  POST {openai_url}/chat/completions           (Authorization: Bearer KEY)
- Gemini:  POST {gemini_url}/v1beta/models/M:generateContent   (x-goog-api-key: KEY)
- Zhipu:   POST {zhipu_url}/chat/completions             (Authorization: Bearer KEY)

Real SDK clients are pointed at it with `base_url`; nothing in an SDK is patched. Error bodies copy
the real services' shapes (OpenAI `insufficient_quota`, Gemini RESOURCE_EXHAUSTED with QuotaFailure
and RetryInfo, Zhipu codes 1113/1302/1000), since that is what the providers must tell apart.
"""

from __future__ import annotations

import json
import random
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from . import wire

ACTIONS = ("ok", "rate_limit", "quota", "auth", "server", "slow", "malformed", "garbage", "truncated", "refuse",
           "unreadable")


@dataclass
class FakeRequest:
    """What the server understood, in one shape whatever the wire format."""

    api: str
    key: str
    model: str
    messages: list[dict[str, str]]
    json_schema: dict | None
    json_mode: bool
    max_tokens: int | None


@dataclass
class Action:
    kind: str = "ok"
    retry_after: float | None = None
    delay: float = 0.0


@dataclass
class KeyBehaviour:
    rpm: int = 0                      # server-side limit (token bucket, `burst_s` of burst); 0: none
    burst_s: float = 5.0
    quota: bool = False               # every call: out of quota
    invalid: bool = False             # every call: 401
    script: deque = field(default_factory=deque)  # one-shot actions, used before anything else
    level: float = 0.0
    stamp: float = 0.0


@dataclass
class Logged:
    api: str
    key: str
    outcome: str
    at: float


def default_reply(req: FakeRequest) -> str:
    """A reply that fits the request's schema, built from the last user message."""
    last = next((m["content"] for m in reversed(req.messages) if m["role"] == "user"), "")
    props = (req.json_schema or _schema_in_prompt(req) or {}).get("properties")
    if props:
        return json.dumps({k: _fill(v, last) for k, v in props.items()}, ensure_ascii=False)
    return json.dumps({"answer": f"re: {last[:60]}"}) if req.json_mode else f"re: {last[:60]}"


def _schema_in_prompt(req: FakeRequest) -> dict | None:
    """JSON mode without a schema (Zhipu): the provider put the schema in the system message."""
    system = next((m["content"] for m in req.messages if m["role"] == "system"), "")
    marker = "matches this JSON Schema:\n"
    return json.loads(system.split(marker, 1)[1]) if req.json_mode and marker in system else None


def _fill(schema: dict, text: str) -> Any:
    kind = schema.get("type")
    return {"array": [f"point: {text[:20]}"], "integer": 1, "number": 1.5, "boolean": True,
            "object": {}}.get(kind, f"value for {text[:40]}")


class FakeLLMServer:
    def __init__(self, reply: Callable[[FakeRequest], str] = default_reply, latency: tuple[float, float] = (0, 0),
                 p_server_error: float = 0.0, p_malformed: float = 0.0, seed: int = 0) -> None:
        self.reply, self.latency = reply, latency
        self.p_server_error, self.p_malformed = p_server_error, p_malformed
        self.rng = random.Random(seed)
        self.keys: dict[str, KeyBehaviour] = {}
        self.log: list[Logged] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    # --- scripting ---
    def key(self, key: str, **kw: Any) -> KeyBehaviour:
        """Set a key's lasting behaviour: rpm, burst_s, quota, invalid."""
        with self._lock:
            b = self.keys.setdefault(key, KeyBehaviour())
            for name, value in kw.items():
                setattr(b, name, value)
            b.level, b.stamp = b.rpm / 60 * b.burst_s, time.monotonic()
            return b

    def then(self, key: str, kind: str, times: int = 1, retry_after: float | None = None, delay: float = 0.0) -> None:
        """Queue one-shot actions for a key's next calls, e.g. then("k1", "rate_limit", retry_after=2)."""
        assert kind in ACTIONS, kind
        with self._lock:
            self.keys.setdefault(key, KeyBehaviour()).script.extend(Action(kind, retry_after, delay) for _ in range(times))

    def count(self, key: str | None = None, outcome: str | None = None, api: str | None = None) -> int:
        with self._lock:
            return sum(1 for e in self.log if (key is None or e.key == key) and (outcome is None or e.outcome == outcome)
                       and (api is None or e.api == api))

    # --- urls ---
    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def openai_url(self) -> str:
        return self.url + "/v1"

    @property
    def gemini_url(self) -> str:
        return self.url

    @property
    def zhipu_url(self) -> str:
        return self.url + "/api/paas/v4"

    # --- lifecycle ---
    def start(self) -> "FakeLLMServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                status, headers, payload = server._handle(self.path, dict(self.headers), body)
                raw = isinstance(payload, str)  # a proxy's error page rather than the API's JSON
                data = payload.encode() if raw else json.dumps(payload, ensure_ascii=False).encode()
                try:
                    self.send_response(status)
                    for k, v in {"Content-Type": "text/html" if raw else "application/json", **headers}.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

            def handle(self) -> None:
                try:
                    super().handle()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # a client killed mid-connection (the kill-and-resume tests do that)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def __enter__(self) -> "FakeLLMServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- one request ---
    def _handle(self, path: str, headers: dict[str, str], body: dict) -> tuple[int, dict, dict | str]:
        codec = wire.codec_for(path)
        if codec is None:
            return 404, {}, {"error": {"message": f"no route {path}"}}
        req = codec.parse(path, {k.lower(): v for k, v in headers.items()}, body)
        action = self._decide(req)
        if action.delay:
            time.sleep(action.delay)
        elif self.latency[1]:
            time.sleep(self.rng.uniform(*self.latency))
        if action.kind in ("ok", "slow", "malformed", "garbage", "truncated", "refuse"):
            try:
                text = self.reply(req)
            except Exception:  # a bug in a test's reply function: a 500 the test can count, and the traceback
                traceback.print_exc()
                action = Action("reply_error")
            else:
                self._log(req, action.kind)
                return 200, {}, codec.reply(req, _shape(text, action.kind), action.kind)
        self._log(req, action.kind)
        if action.kind == "unreadable":
            return 200, {}, "<html><body>502 Bad Gateway</body></html>"
        return codec.error(action.kind, action.retry_after)

    def _log(self, req: FakeRequest, outcome: str) -> None:
        with self._lock:
            self.log.append(Logged(req.api, req.key, outcome, time.monotonic()))

    def _decide(self, req: FakeRequest) -> Action:
        with self._lock:
            b = self.keys.setdefault(req.key, KeyBehaviour())
            if b.invalid:
                return Action("auth")
            if b.quota:
                return Action("quota")
            if b.script:
                return b.script.popleft()
            if b.rpm:
                now, rate = time.monotonic(), b.rpm / 60
                b.level = min(rate * b.burst_s, b.level + (now - b.stamp) * rate)
                b.stamp = now
                if b.level < 1:
                    return Action("rate_limit", retry_after=round((1 - b.level) / rate, 3))
                b.level -= 1
            roll = self.rng.random()
            if roll < self.p_server_error:
                return Action("server")
            if roll < self.p_server_error + self.p_malformed:
                return Action("garbage")
            return Action("ok")


def _shape(text: str, kind: str) -> str:
    if kind == "malformed":  # repairable: fenced, with a trailing comma
        return "```json\n" + text.rstrip("}") + ",}\n```" if text.endswith("}") else "```json\n" + text + "\n```"
    if kind == "garbage":
        return "Sure! Here is the JSON you asked for: {question: oops"
    if kind == "truncated":
        return text[: max(1, len(text) // 2)]
    if kind == "refuse":
        return "I cannot help with that request."
    return text
