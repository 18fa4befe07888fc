"""The one exception family a user sees. The CLI turns these into a message and an exit code."""

from __future__ import annotations


class StillroomError(Exception):
    """An error the user can act on. `str(err)` is the whole message, naming the fix."""

    exit_code = 1


class UsageError(StillroomError):
    """Bad flags, bad config, unknown names: exit code 2."""

    exit_code = 2


class ConfigError(UsageError):
    """stillroom.toml is missing, unreadable or invalid."""


class ProjectNotFound(UsageError):
    """No stillroom project in the working directory or above it."""


class UnknownName(UsageError):
    """A registry lookup failed; the message lists the known names."""


class SchemaTooNew(StillroomError):
    """The database was written by a newer stillroom."""

    exit_code = 2


class StoreBusy(StillroomError):
    """Another process held the project database for longer than the configured wait."""


class ExtractError(StillroomError):
    """One input file could not be turned into text; the batch goes on."""

    def __init__(self, path: str, problem: str, hint: str = "") -> None:
        self.path, self.problem, self.hint = path, problem, hint
        super().__init__(f"{path}: {problem}" + (f" — {hint}" if hint else ""))

    def __reduce__(self):  # crosses process boundaries intact (ingest workers return it)
        return (type(self), (self.path, self.problem, self.hint))
