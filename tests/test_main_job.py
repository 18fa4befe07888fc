"""The README's first command, as written there, on the bundled examples: the real local model, no keys,
no server. It must end with a snapshot whose manifest matches its files."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_main_command() -> list[str]:
    """The `stillroom run` part of the README's first command (its setup half has already run here)."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    line = next(ln for b in blocks for ln in b.splitlines() if " run examples/" in ln)
    run = line.split("&&")[-1].strip()
    argv = shlex.split(run)
    assert argv[0] == ".venv/bin/stillroom", f"README main command changed shape: {run}"
    return argv[1:]


def test_the_readme_main_command_is_one_setup_then_stillroom_run_on_examples():
    args = readme_main_command()
    assert args[:2] == ["run", "examples/"] and "--project" in args


@pytest.mark.slow
def test_the_readme_main_command_ends_with_a_verified_snapshot(tmp_path):
    args = readme_main_command()
    args[args.index("--project") + 1] = str(tmp_path / "demo")  # the README's `demo`, somewhere temporary
    env = {**os.environ, "STILLROOM_CACHE": os.environ.get("STILLROOM_CACHE", str(Path.home() / ".cache" / "stillroom"))}
    for var in ("OPENAI_API_KEY", "OPENAI_API_KEYS", "GEMINI_API_KEY", "GOOGLE_API_KEY", "ZHIPUAI_API_KEY"):
        env.pop(var, None)  # no keys: the local model, as on a fresh machine
    done = subprocess.run([sys.executable, "-m", "stillroom", *args, "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1500)
    # 1 means "some units failed and were reported": the 135M stand-in model's rambling questions do.
    assert done.returncode in (0, 1), done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["documents"] == len(list((ROOT / "examples").iterdir()))
    assert summary["gates_passed"] and summary["snapshot"], summary

    snapshot = Path(summary["snapshot"])
    manifest = json.loads((snapshot / "manifest.json").read_text(encoding="utf-8"))
    exported = sum(s["count"] for s in manifest["splits"].values())
    assert exported > 0 and manifest["counts"] and not manifest["forced"]
    for split in manifest["splits"].values():
        lines = (snapshot / split["file"]).read_text(encoding="utf-8").splitlines()
        assert len(lines) == split["count"]
        for line in lines:
            messages = json.loads(line)["messages"]
            assert [m["role"] for m in messages][-2:] == ["user", "assistant"] and messages[-1]["content"].strip()
    verified = subprocess.run([sys.executable, "-m", "stillroom", "verify", str(snapshot)], cwd=ROOT,
                              capture_output=True, text=True)
    assert verified.returncode == 0, verified.stdout + verified.stderr
