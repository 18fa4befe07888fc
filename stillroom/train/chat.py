"""`stillroom chat`: a plain terminal loop for trying a tuned model by hand."""

from __future__ import annotations

from pathlib import Path

from stillroom.train.eval import check_inputs, generate


def chat_loop(adapter: Path, max_new_tokens: int) -> None:
    import torch
    from peft import PeftModel

    from stillroom.train.base import load_causal_lm, load_tokenizer, pick_device

    manifest, _snap, ref, _hashes = check_inputs(Path(adapter), None)
    device = pick_device()
    tokenizer = load_tokenizer(ref)
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    model = PeftModel.from_pretrained(load_causal_lm(ref, dtype=dtype).to(device), str(adapter)).eval()
    thinking = manifest["config"].get("enable_thinking", False)
    history: list[dict] = []
    print(f"chatting with {adapter} (base {ref.name}); an empty line ends")
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            break
        if not line:
            break
        history.append({"role": "user", "content": line})
        # generate() answers up to the last assistant turn, so a placeholder turn marks where the answer goes
        answer = generate(model, tokenizer, [{"messages": history + [{"role": "assistant", "content": ""}]}],
                          max_new_tokens, thinking, device)[0]
        print(f"model> {answer}")
        history.append({"role": "assistant", "content": answer})
