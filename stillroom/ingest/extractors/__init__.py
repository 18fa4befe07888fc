"""File formats → pages of blocks. One module per format, registered by suffix."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from stillroom.errors import ExtractError
from stillroom.ingest.blocks import Extraction
from stillroom.registry import Registry


class Extractor(Protocol):
    suffixes: tuple[str, ...]

    def sniff(self, head: bytes) -> bool:
        """True when the first bytes look like this format (catches a file that lies about its extension)."""

    def extract(self, path: Path, passwords: tuple[str, ...]) -> Extraction: ...


EXTRACTORS: Registry[Extractor] = Registry(
    "extractor",
    modules=(
        "stillroom.ingest.extractors.pdf",
        "stillroom.ingest.extractors.text",
        "stillroom.ingest.extractors.markdown",
        "stillroom.ingest.extractors.html",
        "stillroom.ingest.extractors.docx",
    ),
)


def register(cls: type) -> type:
    """Register an extractor class under each suffix it handles."""
    instance = cls()
    for suffix in cls.suffixes:
        EXTRACTORS.register(suffix)(instance)
    return cls


def supported_suffixes() -> list[str]:
    return EXTRACTORS.names()


def extractor_for(path: Path) -> Extractor:
    suffix = path.suffix.lower()
    if suffix not in supported_suffixes():
        raise ExtractError(str(path), f"unsupported file type {suffix or '(no extension)'}",
                           "supported: " + " ".join(supported_suffixes()))
    return EXTRACTORS.get(suffix)


def check_content(path: Path, extractor: Extractor, head: bytes) -> None:
    if not head:
        raise ExtractError(str(path), "empty file", "nothing to ingest; remove it or fill it")
    if not extractor.sniff(head):
        raise ExtractError(str(path), f"content is not {path.suffix.lower()} (the extension does not match the bytes)",
                           "rename it with the right extension or re-export it")


