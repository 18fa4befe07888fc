"""A project is a folder holding stillroom.toml and the DuckDB file; commands find it as git finds .git."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from stillroom.errors import ProjectNotFound, UsageError
from stillroom.registry import load_plugins
from stillroom.settings import Settings, default_toml, load_settings

CONFIG_NAME = "stillroom.toml"
DB_NAME = "stillroom.duckdb"
STATE_DIR = ".stillroom"


@dataclass(frozen=True)
class Project:
    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def db_path(self) -> Path:
        return self.root / DB_NAME

    @property
    def state_dir(self) -> Path:
        """Lock files, caches and uploads: project-local, never shared between projects."""
        return self.root / STATE_DIR

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.config_path)

    def load_plugins(self) -> None:
        """Import the project's own providers, scorers and export formats (`[project] plugins`)."""
        load_plugins(self.root, self.settings.project.plugins)

    def store(self):
        from stillroom.store import Store

        return Store(self.db_path)


def init_project(root: Path) -> tuple[Project, bool]:
    """Create (or leave as is) a project at `root`. Returns the project and whether anything was created."""
    root = root.resolve()
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} exists and is not a folder — pick another path for the project")
    root.mkdir(parents=True, exist_ok=True)
    project = Project(root)
    created = False
    if not project.config_path.exists():
        project.config_path.write_text(default_toml(), encoding="utf-8")
        created = True
    project.state_dir.mkdir(exist_ok=True)
    _loaded(project)  # validate an existing file (and load its plugins) before touching the database
    if not project.db_path.exists():
        created = True
    with project.store().connect():
        pass  # creates the file and runs migrations
    return project, created


def find_project(explicit: Path | None = None, start: Path | None = None) -> Project:
    if explicit is not None:
        root = explicit.resolve()
        if not (root / CONFIG_NAME).is_file():
            raise ProjectNotFound(f"{root} is not a stillroom project (no {CONFIG_NAME}) — run `stillroom init {explicit}`")
        return _loaded(Project(root))
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_NAME).is_file():
            return _loaded(Project(folder))
    raise ProjectNotFound(
        f"no stillroom project in {here} or any folder above it — run `stillroom init` here or pass --project DIR"
    )


def _loaded(project: Project) -> Project:
    project.settings  # every command validates stillroom.toml before doing anything
    project.load_plugins()
    return project
