"""The CLI contract: init, config validation, project discovery, --json, exit codes, light start-up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from stillroom.cli import app
from stillroom.settings import default_toml

runner = CliRunner()


def test_init_writes_commented_defaults_and_database(tmp_path):
    result = runner.invoke(app, ["init", str(tmp_path / "p"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["created"] is True
    toml = (tmp_path / "p" / "stillroom.toml").read_text()
    assert toml == default_toml()
    assert "# Token budget per chunk." in toml and "max_tokens = 384" in toml
    assert (tmp_path / "p" / "stillroom.duckdb").is_file()
    again = runner.invoke(app, ["init", str(tmp_path / "p"), "--json"])
    assert json.loads(again.stdout)["created"] is False


def test_unknown_and_mistyped_keys_name_file_key_and_allowed(tmp_path):
    runner.invoke(app, ["init", str(tmp_path / "p")])
    cfg = tmp_path / "p" / "stillroom.toml"
    cfg.write_text(cfg.read_text().replace("max_tokens = 384", "max_tokens = \"lots\"\nmax_tokenz = 5"))
    result = runner.invoke(app, ["status", "--project", str(tmp_path / "p")])
    assert result.exit_code == 2
    err = result.stderr
    assert str(cfg) in err
    assert "chunking.max_tokenz: unknown key; allowed here: max_tokens, min_tokens, overlap_tokens, tokenizer" in err
    assert "chunking.max_tokens:" in err and "'lots'" in err


def test_project_found_from_subfolder_and_missing_project(tmp_path, monkeypatch):
    runner.invoke(app, ["init", str(tmp_path / "p")])
    sub = tmp_path / "p" / "docs" / "deep"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["project"] == str((tmp_path / "p").resolve())
    monkeypatch.chdir(tmp_path)
    missing = runner.invoke(app, ["status"])
    assert missing.exit_code == 2
    assert "no stillroom project" in missing.stderr and "stillroom init" in missing.stderr


def test_json_mode_keeps_stdout_machine_readable(tmp_path):
    root = tmp_path / "p"
    runner.invoke(app, ["init", str(root)])
    doc = tmp_path / "a.md"
    doc.write_text("# A\n\nThe fee is 30 dollars.\n")
    result = subprocess.run([sys.executable, "-m", "stillroom", "ingest", str(doc), "--json", "-p", str(root)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["chunks"] == 1


def test_help_does_not_import_heavy_frameworks():
    code = ("import sys; from stillroom.cli import app; from typer.testing import CliRunner; "
            "CliRunner().invoke(app, ['--help']); "
            "print(sorted(m for m in ('torch', 'transformers', 'fastapi', 'starlette', 'uvicorn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_every_command_has_help_and_docs_cli_md_is_current():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    import gen_cli_docs

    for command in app.registered_commands:
        assert command.callback.__doc__, f"`stillroom {command.name or command.callback.__name__}` has no help text"
    current = gen_cli_docs.OUT.read_text(encoding="utf-8")
    assert current == gen_cli_docs.render(), "docs/cli.md is stale: run `python tools/gen_cli_docs.py`"
    for name in gen_cli_docs.command_names():
        assert f"## stillroom {name}" in current
