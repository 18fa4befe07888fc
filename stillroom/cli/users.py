"""`stillroom users add|list|disable`: who may log in to the review app."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from stillroom.cli.app import JsonOpt, Output, ProjectOpt, app
from stillroom.project import find_project

users_app = typer.Typer(help="Reviewers who may log in to `stillroom review`.", no_args_is_help=True)
app.add_typer(users_app, name="users")

NameArg = Annotated[str, typer.Argument(help="Login name: letters, digits and . _ - @")]


@users_app.command("add")
def add(name: NameArg, admin: Annotated[bool, typer.Option("--admin", help="May see everyone's work, export and start runs.")] = False,
        project: ProjectOpt = None, json_: JsonOpt = False) -> None:
    """Create a reviewer and print a one-time password (only its argon2 hash is stored)."""
    from stillroom.review_ui.users import add_user

    out = Output(json_)
    password = add_user(find_project(project).store(), name, admin=admin)
    out.say(f"added {'admin' if admin else 'reviewer'} {name}\n  password: {password}\n"
            "  (shown once, never stored: hand it over now; `users disable` and add again to replace it)")
    out.summary({"name": name, "admin": admin, "password": password})


@users_app.command("list")
def list_(project: ProjectOpt = None, json_: JsonOpt = False) -> None:
    """Reviewers, their role and whether they may log in."""
    from stillroom.review_ui.users import list_users

    out = Output(json_)
    rows = list_users(find_project(project).store())
    table = Table("name", "role", "status", "created")
    for r in rows:
        table.add_row(r["name"], "admin" if r["is_admin"] else "reviewer", "disabled" if r["disabled"] else "active",
                      f"{r['created_at']:%Y-%m-%d %H:%M}")
    out.say(table)
    out.summary({"users": rows})


@users_app.command("disable")
def disable(name: NameArg, project: ProjectOpt = None, json_: JsonOpt = False) -> None:
    """Stop a reviewer from logging in (their decisions stay)."""
    from stillroom.review_ui.users import disable_user

    out = Output(json_)
    disable_user(find_project(project).store(), name)
    out.say(f"disabled {name}: they can no longer log in (a running server ends their session within 30 s)")
    out.summary({"name": name, "disabled": True})
