"""Reviewer accounts: the `users` table, passwords kept only as argon2 hashes.

Imported by the CLI (`stillroom users ...`) and the web app; argon2 is imported lazily so
`stillroom --help` stays light.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import lru_cache

from stillroom.errors import UsageError


@dataclass(frozen=True)
class User:
    name: str
    is_admin: bool
    disabled: bool = False


@lru_cache(maxsize=1)
def _hasher():
    from argon2 import PasswordHasher

    return PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    # Unknown names are checked against this, so a miss costs as long as a wrong password.
    return _hasher().hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def _check_name(name: str) -> None:
    if not name or len(name) > 64 or not all(c.isalnum() or c in "._-@" for c in name):
        raise UsageError(f"user name {name!r}: use 1–64 letters, digits or . _ - @")


def add_user(store, name: str, *, admin: bool = False) -> str:
    """Create a reviewer; returns the generated password, which is shown once and never stored."""
    _check_name(name)
    password = secrets.token_urlsafe(12)
    digest = hash_password(password)
    with store.transaction() as con:
        if con.execute("SELECT 1 FROM users WHERE name = ?", [name]).fetchone():
            raise UsageError(f"user {name!r} exists — pick another name, or `stillroom users disable {name}` first")
        con.execute("INSERT INTO users (name, password_hash, is_admin) VALUES (?, ?, ?)", [name, digest, admin])
        con.execute("INSERT INTO audit_log (actor, action, subject) VALUES ('cli', 'user_add', ?)", [name])
    return password


def list_users(store) -> list[dict]:
    return store.query_dicts("SELECT name, is_admin, disabled, created_at FROM users ORDER BY name")


def disable_user(store, name: str) -> None:
    with store.transaction() as con:
        if not con.execute("SELECT 1 FROM users WHERE name = ?", [name]).fetchone():
            raise UsageError(f"no user {name!r} — `stillroom users list` shows who exists")
        con.execute("UPDATE users SET disabled = true WHERE name = ?", [name])
        con.execute("INSERT INTO audit_log (actor, action, subject) VALUES ('cli', 'user_disable', ?)", [name])


def get_user(store, name: str) -> User | None:
    row = store.query("SELECT name, is_admin, disabled FROM users WHERE name = ?", [name])
    return User(*row[0]) if row else None


def lookup(store, name: str) -> tuple | None:
    """The row `check_password` needs; read it under the database gate, verify outside it (argon2 is slow)."""
    rows = store.query("SELECT name, is_admin, disabled, password_hash FROM users WHERE name = ?", [name])
    return rows[0] if rows else None


def check_password(row: tuple | None, password: str) -> User | None:
    """The user if the password matches and the account is enabled; argon2 compares in constant time."""
    from argon2.exceptions import InvalidHashError, VerificationError

    digest = row[3] if row else _dummy_hash()
    try:
        _hasher().verify(digest, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or row[2]:
        return None
    return User(row[0], row[1])
