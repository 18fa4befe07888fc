"""[distill] settings. Owned by the distill stage; add fields here (each with a description: it becomes the comment in stillroom.toml)."""

from __future__ import annotations

from stillroom.settings.base import Section


class DistillSettings(Section):
    pass
