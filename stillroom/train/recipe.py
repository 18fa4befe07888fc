"""The training recipe, top to bottom: processes and device → data → model + LoRA → optimizer →
resume → loop (packed micro-batches, accumulation, eval, checkpoints) → adapter, curves, manifest.

The same file runs on one CPU, one GPU, or N processes under `torchrun` / `accelerate launch`
(DDP): the launcher's RANK / WORLD_SIZE / LOCAL_RANK variables are all it needs.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import random
import shutil
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from stillroom.errors import StillroomError
from stillroom.train.base import BaseRef, fingerprint, load_causal_lm, load_tokenizer, pick_device, resolve
from stillroom.train.config import TrainConfig
from stillroom.train.data import IGNORE, encode, end_markers, iter_windows, micro_batches, open_snapshot, pack
from stillroom.train.manifest import write_manifest


class CausalLMLoss(nn.Module):
    """Summed cross-entropy over assistant tokens, computing logits only where a label is.

    Prompt tokens never reach the vocabulary projection: with a 150k-token vocabulary that skips a
    large, memory-hungry matmul for every prompt position. DDP wraps this module, so its forward is
    the one that gradient synchronisation hooks into.
    """

    def __init__(self, peft_model: nn.Module) -> None:
        super().__init__()
        self.peft_model = peft_model
        causal_lm = peft_model.get_base_model()
        self.decoder, self.lm_head = causal_lm.model, causal_lm.lm_head

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        hidden = self.decoder(input_ids=input_ids, position_ids=position_ids, use_cache=False).last_hidden_state
        targets = labels[:, 1:]
        keep = targets != IGNORE
        logits = self.lm_head(hidden[:, :-1][keep]).float()
        return F.cross_entropy(logits, targets[keep], reduction="sum")


def train(snapshot: Path, cfg: TrainConfig, out: Path, base_model: str | None = None, max_steps: int | None = None,
          resume: bool = False, log: Callable[[str], None] = print) -> dict:
    # --- 1. Processes and device -------------------------------------------------------------
    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    device = pick_device()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    say = log if rank == 0 else (lambda _msg: None)
    quant = _quantization(cfg, device)
    dtype = _dtype(cfg, device)
    say(f"device: {device.type}" + (f" ×{world} processes (DDP)" if world > 1 else "")
        + f" · mode: {'QLoRA 4-bit NF4, double quantisation' if quant else 'LoRA'} · compute dtype: {str(dtype)[6:]}")
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    out = Path(out)

    # --- 2. Data: the snapshot's splits, rendered with the base model's own chat template -------
    snap = open_snapshot(snapshot)
    ref = resolve(base_model)
    tokenizer = load_tokenizer(ref)
    markers = end_markers(tokenizer)

    def encode_split(name: str) -> list:
        if name not in snap.manifest.get("splits", {}):
            return []
        done = [encode(tokenizer, ex, cfg.max_length, cfg.enable_thinking, markers) for ex in snap.split(name)]
        return [e for e in done if e is not None]

    train_set, val_set = encode_split("train"), encode_split("val")
    steps_per_epoch = math.ceil(len(micro_batches(train_set, cfg.batch_size, cfg.seed, rank, world))
                                / cfg.gradient_accumulation)
    if steps_per_epoch == 0:
        raise StillroomError(f"{snapshot}: too few train examples for batch_size {cfg.batch_size} × "
                             f"{world} processes — lower batch_size or export more items")
    total_steps = max_steps or math.ceil(steps_per_epoch * cfg.epochs)
    say(f"snapshot {snap.id}: {len(train_set)} train / {len(val_set)} val examples · base model {ref.name} · "
        f"{total_steps} optimizer steps ({steps_per_epoch} per epoch)")

    # --- 3. Model and LoRA adapter -----------------------------------------------------------
    model = _load_model(ref, quant, dtype, device)
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(model, LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=cfg.target_modules, task_type="CAUSAL_LM"))
    if cfg.gradient_checkpointing:
        # Non-reentrant checkpointing works with frozen inputs and with DDP without extra hooks.
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    loss_fn = CausalLMLoss(model)
    runner = (nn.parallel.DistributedDataParallel(loss_fn, device_ids=[device.index] if device.type == "cuda" else None)
              if world > 1 else loss_fn)

    # --- 4. Optimizer and learning-rate schedule ---------------------------------------------
    from transformers import get_scheduler

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    warmup = cfg.warmup_steps or round(cfg.warmup_ratio * total_steps)
    scheduler = get_scheduler(cfg.scheduler, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)

    # --- 5. Resume from the newest checkpoint ------------------------------------------------
    state = {"step": 0, "history": [], "val": [], "tokens": 0, "seconds": 0.0}
    if resume:
        state = _load_checkpoint(out / "checkpoints", model, optimizer, scheduler, say) or state

    # --- 6. The loop -------------------------------------------------------------------------
    started, step = time.monotonic() - state["seconds"], state["step"]
    epoch = step // steps_per_epoch
    while step < total_steps:
        windows = list(iter_windows(micro_batches(train_set, cfg.batch_size, cfg.seed + epoch, rank, world),
                                    cfg.gradient_accumulation))
        for window in windows[step - epoch * steps_per_epoch:]:
            model.train()
            packed = [_tensors(pack(group), device) for group in window]
            n_label = sum(int((b["labels"][:, 1:] != IGNORE).sum()) for b in packed)
            loss_sum = torch.zeros((), device=device)
            for i, batch in enumerate(packed):
                last = i == len(packed) - 1
                with runner.no_sync() if world > 1 and not last else nullcontext():
                    loss = runner(**batch)
                    (loss / n_label).backward()
                loss_sum += loss.detach()
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            window_loss, tokens = _global_mean(loss_sum, n_label, sum(b["input_ids"].numel() for b in packed), world)
            state["tokens"] += tokens
            state["history"].append({"step": step, "epoch": epoch, "loss": window_loss, "lr": lr})
            if step % cfg.log_every == 0 or step == 1:
                say(f"step {step}/{total_steps} · epoch {epoch} · loss {window_loss:.4f} · lr {lr:.2e}")
            if (cfg.eval_every and step % cfg.eval_every == 0) or step == total_steps:
                val = _val_loss(loss_fn, model, val_set, cfg.batch_size, device, rank, world)
                if val is not None:
                    state["val"].append({"step": step, "loss": val})
                    say(f"step {step} · val loss {val:.4f}")
            state.update(step=step, seconds=time.monotonic() - started)
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < total_steps and rank == 0:
                _save_checkpoint(out / "checkpoints", state, model, optimizer, scheduler, cfg.keep_checkpoints)
                say(f"checkpoint saved at step {step}")
            if step >= total_steps:
                break
        epoch += 1

    # --- 7. Adapter, curves and manifest (rank 0 alone writes) -------------------------------
    metrics = {
        "steps": step, "epochs": round(step / steps_per_epoch, 3), "tokens": state["tokens"],
        "seconds": round(state["seconds"], 2), "tokens_per_s": round(state["tokens"] / max(state["seconds"], 1e-9), 1),
        "first_train_loss": state["history"][0]["loss"] if state["history"] else None,
        "final_train_loss": state["history"][-1]["loss"] if state["history"] else None,
        "final_val_loss": state["val"][-1]["loss"] if state["val"] else None,
    }
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out)
        (out / "history.json").write_text(json.dumps({"train": state["history"], "val": state["val"]}, indent=1))
        from stillroom.train.plots import plot_training

        for problem in plot_training(state["history"], state["val"], out):
            say(problem)
        write_manifest(out, snapshot_id=snap.id, snapshot_hash=snap.hash, base_model=ref.name,
                       base_hash=fingerprint(ref), config=cfg.model_dump(), metrics=metrics,
                       extra={"base_ref": {"folder": ref.folder, "gguf_file": ref.gguf_file},
                              "device": device.type, "mode": "qlora-nf4" if quant else "lora",
                              "world_size": world, "snapshot_path": str(Path(snapshot).resolve())})
        say(f"adapter written to {out} · train loss {metrics['first_train_loss']:.4f} → "
            f"{metrics['final_train_loss']:.4f}" + (f" · val loss {metrics['final_val_loss']:.4f}"
                                                    if metrics["final_val_loss"] is not None else ""))
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return {"adapter": str(out), "snapshot_id": snap.id, "base_model": ref.name, "device": device.type,
            "mode": "qlora-nf4" if quant else "lora", "world_size": world, **metrics}


# --- helpers the recipe calls, in the order it calls them ------------------------------------

def _quantization(cfg: TrainConfig, device) -> bool:
    has_bnb = importlib.util.find_spec("bitsandbytes") is not None
    if cfg.quantization == "nf4" and not (device.type == "cuda" and has_bnb):
        missing = "a CUDA GPU" if device.type != "cuda" else "bitsandbytes (`pip install bitsandbytes`)"
        raise StillroomError(f"quantization = \"nf4\" needs {missing}; set quantization = \"auto\" to train "
                             "plain LoRA instead")
    return cfg.quantization != "none" and device.type == "cuda" and has_bnb


def _dtype(cfg: TrainConfig, device) -> torch.dtype:
    if cfg.dtype != "auto":
        return getattr(torch, cfg.dtype)
    return torch.float32 if device.type == "cpu" else torch.bfloat16


def _load_model(ref: BaseRef, quant: bool, dtype: torch.dtype, device) -> nn.Module:
    kw: dict = {"dtype": dtype}
    if device.type == "cuda" and importlib.util.find_spec("flash_attn"):
        kw["attn_implementation"] = "flash_attention_2"  # reads packed boundaries from position ids
    if quant:
        from transformers import BitsAndBytesConfig

        kw["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype)
        kw["device_map"] = {"": device.index or 0}
    model = load_causal_lm(ref, **kw)
    if not quant:
        model.to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _tensors(row: dict[str, list[int]], device) -> dict[str, torch.Tensor]:
    return {k: torch.tensor([v], dtype=torch.long, device=device) for k, v in row.items()}


def _global_mean(loss_sum: torch.Tensor, n_label: int, n_tokens: int, world: int) -> tuple[float, int]:
    """Loss per label token and tokens seen, summed over every process."""
    t = torch.stack([loss_sum.float(), torch.tensor(float(n_label), device=loss_sum.device),
                     torch.tensor(float(n_tokens), device=loss_sum.device)])
    if world > 1:
        dist.all_reduce(t)
    return float(t[0] / t[1]), int(t[2])


@torch.no_grad()
def _val_loss(loss_fn: CausalLMLoss, model, val_set: list, batch_size: int, device, rank: int, world: int):
    if not val_set:
        return None
    model.eval()
    total = torch.zeros(2, device=device)
    share = val_set[rank::world]
    for i in range(0, len(share), batch_size):
        batch = _tensors(pack(share[i:i + batch_size]), device)
        total[0] += loss_fn(**batch)
        total[1] += int((batch["labels"][:, 1:] != IGNORE).sum())
    if world > 1:
        dist.all_reduce(total)
    model.train()
    return float(total[0] / total[1])


def _save_checkpoint(folder: Path, state: dict, model, optimizer, scheduler, keep: int) -> None:
    """Written to a temporary folder and renamed, so a kill mid-write never leaves a half checkpoint."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    final = folder / f"step-{state['step']:07d}"
    tmp = folder / f".tmp-{state['step']:07d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in get_peft_model_state_dict(model).items()}, tmp / "adapter.safetensors")
    torch.save({"state": state, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng": torch.get_rng_state()}, tmp / "trainer_state.pt")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in sorted(folder.glob("step-*"))[:-keep]:
        shutil.rmtree(old)


def _load_checkpoint(folder: Path, model, optimizer, scheduler, say) -> dict | None:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    found = sorted(folder.glob("step-*"))
    if not found:
        say(f"--resume: no checkpoint in {folder}; starting from step 0")
        return None
    ckpt = found[-1]
    set_peft_model_state_dict(model, load_file(ckpt / "adapter.safetensors"))
    saved = torch.load(ckpt / "trainer_state.pt", weights_only=False)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng"])
    say(f"resumed from {ckpt.name} (step {saved['state']['step']})")
    return saved["state"]
