"""A fake LLM server for tests and the benchmark: `with FakeLLMServer() as srv: ... srv.openai_url`."""

from .config import ENV, fake_settings
from .server import Action, FakeLLMServer, FakeRequest, KeyBehaviour, default_reply

__all__ = ["ENV", "fake_settings", "Action", "FakeLLMServer", "FakeRequest", "KeyBehaviour", "default_reply"]
