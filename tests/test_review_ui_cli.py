"""`stillroom users ...` and `stillroom review` from the command line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from stillroom.cli import app
from stillroom.project import init_project
from stillroom.review_ui.users import get_user, lookup, check_password

runner = CliRunner()


def test_users_add_list_disable(tmp_path):
    project, _ = init_project(tmp_path / "proj")
    p = str(project.root)
    r = runner.invoke(app, ["users", "add", "alice", "--admin", "-p", p, "--json"])
    assert r.exit_code == 0, r.output
    password = json.loads(r.stdout)["password"]
    assert check_password(lookup(project.store(), "alice"), password).is_admin
    stored = project.store().scalar("SELECT password_hash FROM users WHERE name = 'alice'")
    assert stored.startswith("$argon2") and password not in stored

    r = runner.invoke(app, ["users", "add", "alice", "-p", p])
    assert r.exit_code == 2 and "exists" in r.stderr

    r = runner.invoke(app, ["users", "add", "bob", "-p", p, "--json"])
    rows = json.loads(runner.invoke(app, ["users", "list", "-p", p, "--json"]).stdout)["users"]
    assert [(u["name"], u["is_admin"], u["disabled"]) for u in rows] == [("alice", True, False), ("bob", False, False)]

    assert runner.invoke(app, ["users", "disable", "bob", "-p", p]).exit_code == 0
    assert get_user(project.store(), "bob").disabled
    r = runner.invoke(app, ["users", "disable", "nobody", "-p", p])
    assert r.exit_code == 2 and "users list" in r.stderr


def test_review_refuses_to_serve_before_anyone_can_log_in(tmp_path):
    project, _ = init_project(tmp_path / "proj")
    r = runner.invoke(app, ["review", "-p", str(project.root)])
    assert r.exit_code == 2 and "stillroom users add" in r.stderr
    help_text = runner.invoke(app, ["review", "--help"]).output
    assert "127.0.0.1" in help_text and "--port" in help_text
