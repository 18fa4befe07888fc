"""[export] settings. Owned by the export stage; add fields here (each with a description: it becomes the comment in stillroom.toml)."""

from __future__ import annotations

from stillroom.settings.base import Section


class ExportSettings(Section):
    pass
