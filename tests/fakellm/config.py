"""Distill settings that point every provider at a running FakeLLMServer (for tests and the benchmark)."""

from __future__ import annotations

from typing import Any

from stillroom.settings.distill import DistillSettings, ProviderSettings, ProvidersSettings

from .server import FakeLLMServer

ENV = {"openai": "OPENAI_API_KEYS", "gemini": "GEMINI_API_KEYS", "zhipu": "ZHIPUAI_API_KEYS"}


def fake_settings(srv: FakeLLMServer, chain: list[str], rpm: int = 0, timeout: float = 5.0, concurrency: int = 8,
                  **retry: Any) -> DistillSettings:
    """`chain[0]` is the provider, the rest the fallback; retry takes ProvidersSettings fields (backoff_s ...)."""
    urls = {"openai": srv.openai_url, "gemini": srv.gemini_url, "zhipu": srv.zhipu_url}
    per = {name: ProviderSettings(base_url=url, model=f"fake-{name}", rpm=rpm, timeout=timeout)
           for name, url in urls.items()}
    providers = ProvidersSettings(**per, **{"backoff_s": 0.05, "backoff_max_s": 1.0, **retry})
    return DistillSettings(provider=chain[0], fallback=chain[1:], providers=providers, concurrency=concurrency)
