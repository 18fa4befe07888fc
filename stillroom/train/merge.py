"""Fold an adapter into its base model and save plain safetensors; optionally convert to GGUF with llama.cpp."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

from stillroom.errors import StillroomError
from stillroom.train.eval import check_inputs

_CONVERTER = "convert_hf_to_gguf.py"


def find_gguf_converter() -> Path | None:
    """llama.cpp's converter: $LLAMA_CPP_DIR/convert_hf_to_gguf.py, or the script on PATH."""
    if os.environ.get("LLAMA_CPP_DIR"):
        candidate = Path(os.environ["LLAMA_CPP_DIR"]) / _CONVERTER
        if candidate.exists():
            return candidate
    found = shutil.which(_CONVERTER)
    return Path(found) if found else None


def merge(adapter: Path, out: Path, gguf: str | None = None, log: Callable[[str], None] = print) -> dict:
    """`gguf` is an output type for the converter (f16, bf16, q8_0) or None for safetensors only."""
    converter = find_gguf_converter() if gguf else None
    if gguf and converter is None:
        raise StillroomError(f"GGUF export needs llama.cpp's {_CONVERTER}, which was not found — clone llama.cpp, "
                             f"`pip install -r llama.cpp/requirements.txt`, and set LLAMA_CPP_DIR to it "
                             "(or drop --gguf to write safetensors only)")
    _manifest, _snap, ref, hashes = check_inputs(Path(adapter), None)
    import torch
    from peft import PeftModel

    from stillroom.train.base import load_causal_lm, load_tokenizer

    base = load_causal_lm(ref, dtype=torch.bfloat16)  # how base models ship; halves the merged size
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    out = Path(out)
    merged.save_pretrained(out, safe_serialization=True)
    load_tokenizer(ref).save_pretrained(out)
    log(f"merged model written to {out} (safetensors)")
    result = {"out": str(out), **hashes}
    if converter:
        target = out / f"{out.name}-{gguf}.gguf"
        subprocess.run([sys.executable, str(converter), str(out), "--outfile", str(target), "--outtype", gguf],
                       check=True)
        log(f"GGUF written to {target}")
        result["gguf"] = str(target)
    return result
