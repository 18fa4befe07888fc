"""Every test gets its own HOME and STILLROOM_HOME, so nothing leaks between tests or into the user's files."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", help="Rewrite golden files from current output.")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("STILLROOM_HOME", str(home / ".stillroom"))
    # The tokenizer cache is shared across tests: converting the GGUF tokenizer takes seconds.
    monkeypatch.setenv("STILLROOM_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    for var in ("OPENAI_API_KEY", "OPENAI_API_KEYS", "GEMINI_API_KEY", "GEMINI_API_KEYS", "GOOGLE_API_KEY",
                "ZHIPUAI_API_KEY", "ZHIPUAI_API_KEYS", "STILLROOM_KEYS_FILE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def update_golden(request) -> bool:
    return request.config.getoption("--update-golden")


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} (real-world corpora) is not next to the repository")
    return SHARED
