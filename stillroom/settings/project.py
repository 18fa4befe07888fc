"""[project] settings: what belongs to the project as a whole rather than to one stage."""

from __future__ import annotations

from pydantic import Field

from stillroom.settings.base import Section


class ProjectSettings(Section):
    plugins: list[str] = Field(
        default_factory=list,
        description="Your own Python files, loaded whenever a command opens this project; each registers providers, "
                    "scorers or export formats with the decorators the built-ins use (see docs/extending.md). "
                    "Paths relative to the project, e.g. [\"plugins/gateway.py\"].")
