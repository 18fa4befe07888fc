"""Training throughput and peak GPU memory: stillroom's recipe vs a plain transformers + peft padded loop.

The model is Qwen3-8B-shaped (its config is written out below), with random weights: nothing is
downloaded. Examples are random tokens whose lengths follow a QA-like distribution (log-normal, median
~380 tokens; the answer is the last ~40%). Both loops use the qwen3-8b-qlora-r16 preset (r16, α32,
q/k/v/o, batch 4 × accumulation 4). Reported: real (non-padding) tokens/s and peak GPU memory.

    python bench/train_gpu_bench.py                   # H100: plain QLoRA, recipe QLoRA, recipe bf16 LoRA
    python bench/train_gpu_bench.py --variants recipe-qlora --steps 6
    python bench/train_gpu_bench.py --cpu-smoke       # tiny shape on CPU: checks the script runs

Each variant runs in its own process so one variant's allocations never count in another's peak.
Reference: the plain loop measured 2,152 real tokens/s at 20.3 GiB on an H100 (34% of its tokens were
padding); the target is ≥ 2× that in QLoRA mode at no more memory.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

QWEN3_8B = dict(  # Qwen/Qwen3-8B config.json, the fields that shape compute and memory
    architectures=["Qwen3ForCausalLM"], model_type="qwen3", hidden_size=4096, intermediate_size=12288,
    num_hidden_layers=36, num_attention_heads=32, num_key_value_heads=8, head_dim=128, vocab_size=151936,
    max_position_embeddings=40960, rope_theta=1000000.0, rms_norm_eps=1e-6, hidden_act="silu",
    attention_bias=False, tie_word_embeddings=False, bos_token_id=151643, eos_token_id=151645)
TINY = dict(QWEN3_8B, hidden_size=64, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16, vocab_size=1024, bos_token_id=1, eos_token_id=2)
VARIANTS = ("plain-qlora", "recipe-qlora", "recipe-lora")


def example_lengths(n: int, median: float, max_len: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [max(16, min(max_len, round(median * math.exp(rng.gauss(0, 0.5))))) for _ in range(n)]


def make_examples(n: int, median: float, max_len: int, vocab: int):
    from stillroom.train.data import IGNORE, Encoded

    rng = random.Random(1)
    out = []
    for i, length in enumerate(example_lengths(n, median, max_len)):
        ids = [rng.randrange(3, vocab) for _ in range(length)]
        answer_from = int(length * 0.6)
        out.append(Encoded(f"ex{i}", ids, [IGNORE] * answer_from + ids[answer_from:]))
    return out


def build_model(shape: dict, quant: bool, device):
    """Random weights in bf16 (fp32 on CPU); with `quant`, every decoder Linear becomes bitsandbytes NF4 with
    double quantisation and bf16 compute — what BitsAndBytesConfig in the recipe produces from a checkpoint."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(**{k: v for k, v in shape.items() if k != "architectures"})
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    if quant:
        import bitsandbytes as bnb

        for layer in model.model.layers:
            for parent in (layer.self_attn, layer.mlp):
                for name, lin in list(parent.named_children()):
                    if isinstance(lin, torch.nn.Linear):
                        q = bnb.nn.Linear4bit(lin.in_features, lin.out_features, bias=False, compute_dtype=torch.bfloat16,
                                              compress_statistics=True, quant_type="nf4")
                        q.weight = bnb.nn.Params4bit(lin.weight.data, requires_grad=False, compress_statistics=True,
                                                     quant_type="nf4")
                        setattr(parent, name, q.to(device))
        model.is_loaded_in_4bit = True
        torch.cuda.empty_cache()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def lora(model, preset):
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=preset.lora_r, lora_alpha=preset.lora_alpha, lora_dropout=preset.lora_dropout,
                                            target_modules=preset.target_modules, task_type="CAUSAL_LM"))


def plain_steps(model, preset, examples, device):
    """The usual loop: prepare_model_for_kbit_training, batches padded to their longest, HF's own loss."""
    import torch
    from peft import prepare_model_for_kbit_training

    model = lora(prepare_model_for_kbit_training(model, use_gradient_checkpointing=preset.gradient_checkpointing), preset)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=preset.learning_rate)
    groups = [examples[i:i + preset.batch_size] for i in range(0, len(examples), preset.batch_size)]
    for window in (groups[i:i + preset.gradient_accumulation] for i in range(0, len(groups), preset.gradient_accumulation)):
        real = padded = 0
        for group in window:
            width = max(len(e.input_ids) for e in group)
            ids = torch.tensor([e.input_ids + [0] * (width - len(e.input_ids)) for e in group], device=device)
            att = torch.tensor([[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in group], device=device)
            lab = torch.tensor([e.labels + [-100] * (width - len(e.labels)) for e in group], device=device)
            (model(input_ids=ids, attention_mask=att, labels=lab).loss / len(window)).backward()
            real += int(att.sum())
            padded += ids.numel()
        opt.step()
        opt.zero_grad(set_to_none=True)
        yield real, padded


def recipe_steps(model, preset, examples, device):
    """stillroom's loop body: packed rows with per-example positions, logits on answer tokens only."""
    import torch

    from stillroom.train.data import IGNORE, iter_windows, micro_batches, pack
    from stillroom.train.recipe import CausalLMLoss, _tensors

    model = lora(model, preset)
    if preset.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    loss_fn = CausalLMLoss(model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=preset.learning_rate)
    for window in iter_windows(micro_batches(examples, preset.batch_size, 0), preset.gradient_accumulation):
        packed = [_tensors(pack(g), device) for g in window]
        n_label = sum(int((b["labels"][:, 1:] != IGNORE).sum()) for b in packed)
        for batch in packed:
            (loss_fn(**batch) / n_label).backward()
        torch.nn.utils.clip_grad_norm_(params, preset.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        n = sum(b["input_ids"].numel() for b in packed)
        yield n, n


def run_variant(variant: str, args) -> dict:
    import torch

    from stillroom.train.config import load_config

    device = torch.device("cuda" if not args.cpu_smoke else "cpu")
    preset = load_config(preset="qwen3-8b-qlora-r16",
                         **({"gradient_checkpointing": False} if args.no_checkpointing else {}))
    shape = TINY if args.cpu_smoke else QWEN3_8B
    steps = args.warmup + args.steps
    per_step = preset.batch_size * preset.gradient_accumulation
    examples = make_examples(steps * per_step, args.median / (10 if args.cpu_smoke else 1),
                             preset.max_length // (10 if args.cpu_smoke else 1), shape["vocab_size"])
    torch.manual_seed(0)
    model = build_model(shape, quant=variant.endswith("qlora"), device=device)
    loop = plain_steps if variant.startswith("plain") else recipe_steps
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    real = padded = 0
    started = time.perf_counter()
    for i, (r, p) in enumerate(loop(model, preset, examples, device)):
        if i < args.warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()  # timing starts after the last warmup step
            continue
        real, padded = real + r, padded + p
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return {"variant": variant, "real_tokens_per_s": round(real / seconds, 1), "peak_gib": round(peak, 2),
            "padding_share": round(1 - real / padded, 3), "steps_timed": args.steps, "seconds": round(seconds, 1),
            "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated: {', '.join(VARIANTS)}")
    ap.add_argument("--steps", type=int, default=8, help="optimizer steps timed (16 examples each)")
    ap.add_argument("--warmup", type=int, default=2, help="optimizer steps run before timing starts")
    ap.add_argument("--median", type=float, default=380, help="median example length in tokens")
    ap.add_argument("--no-checkpointing", action="store_true", help="turn gradient checkpointing off in both loops")
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny shape on CPU, bf16 LoRA only: checks the script runs")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one variant in this process, print JSON
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_variant(args.one, args)))
        return
    import torch

    if not args.cpu_smoke and not torch.cuda.is_available():
        sys.exit("train_gpu_bench: no CUDA GPU here — run it on an H100, or pass --cpu-smoke to check it runs")
    variants = args.variants.split(",")
    if args.cpu_smoke:
        variants = [v.replace("qlora", "lora") for v in variants if v != "recipe-qlora"] or ["recipe-lora"]
    results = []
    for v in dict.fromkeys(variants):
        cmd = [sys.executable, __file__, "--one", v] + [a for a in sys.argv[1:] if not a.startswith("--variants")]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            print(f"{v}: failed\n{proc.stderr[-3000:]}", file=sys.stderr)
            continue
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    base = next((r for r in results if r["variant"].startswith("plain")), None)
    print(f"\n{'variant':<14} {'real tok/s':>11} {'peak GiB':>9} {'padding':>8} {'speed-up':>9}")
    for r in results:
        up = f"{r['real_tokens_per_s'] / base['real_tokens_per_s']:.2f}×" if base else "–"
        print(f"{r['variant']:<14} {r['real_tokens_per_s']:>11.1f} {r['peak_gib']:>9.2f} {r['padding_share']:>8.1%} {up:>9}")


if __name__ == "__main__":
    main()
