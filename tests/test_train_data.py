"""Snapshot reading, label masking, packing, config, metrics, sweep parsing and adapter manifests — no training."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from stillroom.errors import StillroomError, UnknownName, UsageError
from stillroom.train import data
from stillroom.train.config import load_config
from stillroom.train.manifest import verify_adapter, write_manifest
from stillroom.train.metrics import bleu, json_scores, numeric_match, refusal_correct, rouge_l
from stillroom.train.sweep import parse_sweep
from tests.test_train_helpers import smol_model, write_snapshot  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def tokenizer(smol_model):  # noqa: F811
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smol_model)


SINGLE = {"id": "a", "task": "qa", "meta": {}, "messages": [
    {"role": "user", "content": "What is the rated output of the Harbin plant?"},
    {"role": "assistant", "content": "The Harbin plant is rated at 120 MW."}]}
MULTI = {"id": "b", "task": "multiturn", "meta": {}, "messages": [
    {"role": "system", "content": "Answer from the handbook."},
    {"role": "user", "content": "Is it open on Sundays?"},
    {"role": "assistant", "content": "No, it is closed on Sundays."},
    {"role": "user", "content": "And on Saturdays?"},
    {"role": "assistant", "content": "Yes, from 6 am."}]}


def _labelled_runs(tokenizer, enc) -> list[str]:
    """Decoded text of each contiguous run of labelled tokens."""
    runs, cur = [], []
    for tok, lab in zip(enc.input_ids, enc.labels):
        if lab != data.IGNORE:
            assert lab == tok
            cur.append(tok)
        elif cur:
            runs.append(cur)
            cur = []
    if cur:
        runs.append(cur)
    return [tokenizer.decode(r) for r in runs]


@pytest.mark.parametrize("example", [SINGLE, MULTI], ids=["single-turn", "multi-turn"])
def test_labels_cover_exactly_the_assistant_turns(tokenizer, example):
    enc = data.encode(tokenizer, example, max_length=512)
    want = [m["content"] + "<|im_end|>" for m in example["messages"] if m["role"] == "assistant"]
    assert _labelled_runs(tokenizer, enc) == want
    # and the rendering is the model's own template, token for token
    assert enc.input_ids == tokenizer.apply_chat_template(example["messages"], tokenize=True, return_dict=True)["input_ids"]


def test_cut_examples_without_answer_tokens_are_dropped(tokenizer):
    full = data.encode(tokenizer, SINGLE, max_length=512)
    first_answer_token = next(i for i, lab in enumerate(full.labels) if lab != data.IGNORE)
    assert data.encode(tokenizer, SINGLE, max_length=first_answer_token) is None
    kept = data.encode(tokenizer, SINGLE, max_length=len(full.input_ids) - 3)
    assert kept.input_ids == full.input_ids[:-3] and kept.labels == full.labels[:-3] and kept.n_label < full.n_label


def test_packing_keeps_examples_apart(tokenizer, smol_model):  # noqa: F811
    """Logits of a packed row equal the logits of each example run alone: no attention across boundaries."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(smol_model, dtype=torch.float32).eval()
    encs = [data.encode(tokenizer, ex, 512) for ex in (SINGLE, MULTI)]
    row = data.pack(encs)
    assert len(row["input_ids"]) == sum(len(e.input_ids) for e in encs)  # no padding at all
    assert row["labels"][len(encs[0].input_ids)] == data.IGNORE  # never predict across the seam
    with torch.no_grad():
        packed = model(input_ids=torch.tensor([row["input_ids"]]), position_ids=torch.tensor([row["position_ids"]]),
                       use_cache=False).logits[0]
        alone = [model(input_ids=torch.tensor([e.input_ids])).logits[0] for e in encs]
    torch.testing.assert_close(packed, torch.cat(alone), atol=2e-3, rtol=1e-3)


def test_micro_batches_split_evenly_across_ranks():
    exs = [data.Encoded(str(i), [1, 2], [data.IGNORE, 2]) for i in range(11)]
    r0, r1 = (data.micro_batches(exs, 2, seed=1, rank=r, world=2) for r in (0, 1))
    assert len(r0) == len(r1) == 3
    assert not {e.id for g in r0 for e in g} & {e.id for g in r1 for e in g}
    assert data.micro_batches(exs, 2, seed=1) == data.micro_batches(exs, 2, seed=1)


@pytest.mark.parametrize("fmt", ["openai", "sharegpt", "llamafactory"])
def test_every_format_reads_back_the_same_conversations(tmp_path, fmt):
    want = data.open_snapshot(write_snapshot(tmp_path / "openai")).split("train")
    got = data.open_snapshot(write_snapshot(tmp_path / fmt, fmt)).split("train")
    assert got == want and len(got) == 30


def test_alpaca_and_parquet_records():
    ex = data.to_example({"id": "x", "task": "qa", "instruction": "Sum", "input": "1+1", "output": "2"}, "alpaca")
    assert ex["messages"] == [{"role": "user", "content": "Sum\n\n1+1"}, {"role": "assistant", "content": "2"}]
    row = {"id": "y", "task": "qa", "messages": json.dumps(SINGLE["messages"]), "meta": '{"refusal": true}'}
    assert data.to_example(row, "parquet")["meta"] == {"refusal": True}


def test_snapshot_with_a_changed_file_is_refused(tmp_path):
    snap = write_snapshot(tmp_path / "s")
    with open(snap / "train.jsonl", "a", encoding="utf-8") as f:
        f.write("\n")
    with pytest.raises(StillroomError, match="train.jsonl: changed since export"):
        data.open_snapshot(snap)


def test_presets_reproduce_the_published_setups():
    r16 = load_config(preset="qwen3-8b-qlora-r16")
    assert (r16.lora_r, r16.lora_alpha, r16.target_modules, r16.learning_rate, r16.epochs, r16.batch_size,
            r16.gradient_accumulation, r16.max_length, r16.warmup_steps, r16.weight_decay) == (
        16, 32, ["q_proj", "k_proj", "v_proj", "o_proj"], 1e-4, 4, 4, 4, 2048, 100, 0.01)
    r8 = load_config(preset="qwen3-8b-qlora-r8")
    assert (r8.lora_r, r8.lora_alpha, r8.target_modules, r8.scheduler, r8.warmup_ratio, r8.batch_size,
            r8.gradient_accumulation, r8.epochs) == (8, 16, ["q_proj", "v_proj"], "cosine", 0.05, 1, 16, 2)
    with pytest.raises(UnknownName, match="qwen3-8b-qlora-r16"):
        load_config(preset="nope")


def test_bad_config_names_each_key(tmp_path):
    (tmp_path / "t.toml").write_text("lora_r = 0\nlearnin_rate = 1\n")
    with pytest.raises(UsageError) as e:
        load_config(tmp_path / "t.toml")
    assert "lora_r:" in str(e.value) and "learnin_rate: unknown key" in str(e.value)


def test_sweep_matrix():
    runs = parse_sweep("lr=1e-4,2e-4 epochs=3,4")
    assert runs == [{"learning_rate": "1e-4", "epochs": "3"}, {"learning_rate": "1e-4", "epochs": "4"},
                    {"learning_rate": "2e-4", "epochs": "3"}, {"learning_rate": "2e-4", "epochs": "4"}]
    with pytest.raises(UsageError, match="lr"):
        parse_sweep("lrr=1")


def test_metrics():
    assert rouge_l("the plant is rated at 120 MW", "the plant is rated at 120 MW") == 1.0
    assert 0 < rouge_l("rated at 120 MW", "the plant is rated at 120 MW") < 1
    assert bleu("a b c d e", "a b c d e") == pytest.approx(1.0)
    assert numeric_match("It makes 1.2万 tonnes", "产量为12000吨") in (0.0, 1.0)
    assert numeric_match("rated at 120 MW", "The plant is rated at 120 MW.") == 1.0
    assert numeric_match("rated at 121 MW", "The plant is rated at 120 MW.") == 0.0
    assert numeric_match("anything", "no figures here") is None
    assert refusal_correct("That is outside the handbook, I cannot answer.", True) == 1.0
    assert refusal_correct("Paris.", True) == 0.0
    assert json_scores('```json\n{"name": "A", "mw": 110}\n```', '{"name": "A", "mw": 100}') == {
        "json_parse": 1.0, "json_field_acc": 0.5, "json_rel_error": pytest.approx(0.1)}
    assert json_scores("not json", '{"a": 1}')["json_parse"] == 0.0


def test_adapter_manifest_verifies_and_names_a_tampered_file(tmp_path):
    (tmp_path / "adapter_model.safetensors").write_bytes(b"weights")
    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "x").write_text("resume state is not part of the adapter")
    m = write_manifest(tmp_path, snapshot_id="s", snapshot_hash="h", base_model="b", base_hash="bh", config={}, metrics={})
    assert m["kind"] == "adapter" and set(m["files"]) == {"adapter_model.safetensors", "adapter_config.json"}
    assert verify_adapter(tmp_path) == []
    (tmp_path / "adapter_model.safetensors").write_bytes(b"weightz")
    (tmp_path / "extra.txt").write_text("x")
    problems = verify_adapter(tmp_path)
    assert any(p.startswith("adapter_model.safetensors: changed") for p in problems)
    assert any(p.startswith("extra.txt: not in the manifest") for p in problems)


def test_help_does_not_import_torch():
    code = "import sys; from stillroom.cli import app; import stillroom.cli.train; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_sweep_picks_the_best_run_and_the_cheaper_on_a_tie(tmp_path):
    from stillroom.train.sweep import run_sweep

    val = {"1e-4": 1.5, "2e-4": 1.2, "3e-4": 1.2}  # 2e-4 and 3e-4 tie; 3e-4 trains fewer tokens below

    def train_one(cfg, out):
        out.mkdir(parents=True)
        lr = f"{cfg.learning_rate:.0e}".replace("e-0", "e-")
        return {"final_train_loss": 1.0, "final_val_loss": val[lr], "tokens": 100 if lr == "3e-4" else 200}

    result = run_sweep("lr=1e-4,2e-4,3e-4", load_config(preset="cpu-small"), tmp_path, train_one,
                       lambda _adapter: {"rouge_l": 0.5}, metric="val_loss", log=lambda _m: None)
    assert result["best"]["config"] == {"learning_rate": "3e-4"}
    assert (tmp_path / "sweep.md").read_text().count("| run_") == 3
    assert json.loads((tmp_path / "sweep.json").read_text())["best"] == result["best"]["run_id"]
