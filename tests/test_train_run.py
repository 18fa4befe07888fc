"""Real LoRA training of SmolLM2-135M-Instruct on CPU: loss, reload + generate, manifest, eval, resume, merge, DDP."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys

import pytest

from stillroom.errors import StillroomError
from stillroom.train.config import load_config
from stillroom.train.manifest import verify_adapter
from tests.test_train_helpers import env_for_subprocess, smol_model, stillroom_cmd, write_snapshot  # noqa: F401

pytestmark = pytest.mark.slow
# Small and fast: 8 short train examples, 2 per micro-batch, a high learning rate so a dozen steps visibly learn.
FAST = dict(max_length=96, batch_size=2, learning_rate=2e-3, warmup_ratio=0.0, lora_r=8, lora_alpha=16,
            target_modules=["q_proj", "v_proj"], eval_every=0, log_every=1, eval_max_new_tokens=12)


def _train_toml(path, **extra) -> str:
    from stillroom.settings import _toml_value

    path.write_text("".join(f"{k} = {_toml_value(v)}\n" for k, v in {**FAST, **extra}.items()))
    return str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, smol_model):  # noqa: F811
    from stillroom.train.recipe import train

    root = tmp_path_factory.mktemp("train")
    snap = write_snapshot(root / "snap", n_train=8)
    cfg = load_config(preset="cpu-small", **FAST)
    result = train(snap, cfg, root / "adapter", base_model=str(smol_model), max_steps=12, log=lambda _m: None)
    return root, snap, result


def test_loss_goes_down_and_outputs_are_written(trained):
    root, _snap, result = trained
    assert result["steps"] == 12 and result["device"] == "cpu" and result["mode"] == "lora"
    history = json.loads((root / "adapter" / "history.json").read_text())
    first = history["train"][0]["loss"]
    last = sum(h["loss"] for h in history["train"][-3:]) / 3
    assert last < 0.7 * first, (first, last)
    assert history["val"] and history["val"][-1]["step"] == 12
    for name in ("adapter_model.safetensors", "adapter_config.json", "manifest.json", "loss_curve.png", "lr_schedule.png"):
        assert (root / "adapter" / name).exists(), name


def test_manifest_verifies_and_detects_tampering(trained, tmp_path):
    root, _snap, _ = trained
    copy = shutil.copytree(root / "adapter", tmp_path / "adapter")
    manifest = json.loads((copy / "manifest.json").read_text())
    assert manifest["kind"] == "adapter" and manifest["snapshot_id"] == "snap_test_openai"
    assert len(manifest["base_model_hash"]) == 64 and manifest["config"]["lora_r"] == 8
    assert verify_adapter(copy) == []
    with open(copy / "adapter_config.json", "a") as f:
        f.write(" ")
    assert verify_adapter(copy) == [verify_adapter(copy)[0]] and verify_adapter(copy)[0].startswith("adapter_config.json: changed")
    cli = subprocess.run(stillroom_cmd("verify", str(copy)), capture_output=True, text=True, env=env_for_subprocess())
    assert cli.returncode == 1 and "adapter_config.json: changed" in cli.stderr


def test_eval_reloads_the_adapter_generates_and_writes_its_report(trained):
    root, _snap, _ = trained
    out = root / "eval"
    proc = subprocess.run(stillroom_cmd("eval", str(root / "adapter"), "--baseline", "--limit", "2", "--out", str(out),
                                        "--max-new-tokens", "12", "--json"),
                          capture_output=True, text=True, env=env_for_subprocess(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert set(report["overall"]) == {"tuned", "base"} and report["n_items"] == 2
    assert report["adapter_hash"] and report["snapshot_hash"] and report["base_model_hash"]
    assert all(item["prediction"] for item in report["items"])  # the reloaded adapter generated text
    assert "rouge_l" in report["overall"]["tuned"] and (out / "report.md").exists() and (out / "eval_chart.png").exists()
    assert json.loads(proc.stdout)["split"] == "test"


def test_eval_refuses_to_mix_runs(trained, tmp_path):
    from stillroom.train.eval import check_inputs

    root, _snap, _ = trained
    other = write_snapshot(tmp_path / "other", "sharegpt")  # same items, different files: a different snapshot
    with pytest.raises(StillroomError, match="was trained on snap_test_openai"):
        check_inputs(root / "adapter", other)


def test_merge_writes_safetensors_and_names_the_missing_gguf_converter(trained, tmp_path, monkeypatch):
    from stillroom.train.merge import merge

    root, _snap, _ = trained
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.delenv("LLAMA_CPP_DIR", raising=False)
    with pytest.raises(StillroomError, match="convert_hf_to_gguf.py"):
        merge(root / "adapter", tmp_path / "merged", gguf="f16", log=lambda _m: None)
    merge(root / "adapter", tmp_path / "merged", log=lambda _m: None)
    assert (tmp_path / "merged" / "model.safetensors").exists() and (tmp_path / "merged" / "config.json").exists()


def test_resume_after_a_kill_continues_from_the_checkpoint(tmp_path, smol_model):  # noqa: F811
    snap = write_snapshot(tmp_path / "snap", n_train=8)
    toml = _train_toml(tmp_path / "train.toml", checkpoint_every=1, keep_checkpoints=1)
    args = stillroom_cmd("train", str(snap), "--config", toml, "--base-model", str(smol_model),
                         "--out", str(tmp_path / "a"), "--max-steps", "3")
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env_for_subprocess())
    for line in proc.stderr:
        if "checkpoint saved at step 1" in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "a" / "manifest.json").exists()
    done = subprocess.run([*args, "--resume"], capture_output=True, text=True, env=env_for_subprocess(), timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = int(re.search(r"resumed from step-(\d+) \(step \d+\)", done.stderr).group(1))
    assert resumed in (1, 2)  # the kill lands right after checkpoint 1, or just after checkpoint 2 at worst
    assert "step 1/3" not in done.stderr and f"step {resumed + 1}/3" in done.stderr
    history = json.loads((tmp_path / "a" / "history.json").read_text())["train"]
    assert [h["step"] for h in history] == [1, 2, 3]


@pytest.mark.skipif(not shutil.which("torchrun", path=str(__import__("pathlib").Path(sys.executable).parent)),
                    reason="torchrun not installed next to this python")
def test_ddp_two_cpu_processes_with_gloo(tmp_path, smol_model):  # noqa: F811
    snap = write_snapshot(tmp_path / "snap", n_train=8)
    toml = _train_toml(tmp_path / "train.toml")
    torchrun = str(__import__("pathlib").Path(sys.executable).parent / "torchrun")
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "stillroom", "train", str(snap),
                           "--config", toml, "--base-model", str(smol_model), "--out", str(tmp_path / "a"),
                           "--max-steps", "2", "--json"],
                          capture_output=True, text=True, env=env_for_subprocess(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["world_size"] == 2  # rank 0 alone prints the summary
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["metrics"]["steps"] == 2
    assert verify_adapter(tmp_path / "a") == []


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
def test_qlora_on_cuda(tmp_path, smol_model):  # noqa: F811
    pytest.importorskip("bitsandbytes")
    from stillroom.train.recipe import train

    snap = write_snapshot(tmp_path / "snap", n_train=8)
    result = train(snap, load_config(preset="cpu-small", quantization="nf4", **FAST), tmp_path / "a",
                   base_model=str(smol_model), max_steps=4, log=lambda _m: None)
    assert result["mode"] == "qlora-nf4" and result["device"] == "cuda"
