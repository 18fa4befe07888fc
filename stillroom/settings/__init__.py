"""All of stillroom.toml, validated with pydantic. Each stage owns one small file in this folder."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from stillroom.errors import ConfigError
from stillroom.settings.base import Section
from stillroom.settings.curate import CurateSettings
from stillroom.settings.distill import DistillSettings
from stillroom.settings.export import ExportSettings
from stillroom.settings.ingest import ChunkingSettings, IngestSettings
from stillroom.settings.project import ProjectSettings
from stillroom.settings.review import ReviewSettings
from stillroom.settings.train import TrainSettings


class Settings(Section):
    project: ProjectSettings = Field(default_factory=ProjectSettings, description="The project's own code.")
    ingest: IngestSettings = Field(default_factory=IngestSettings, description="Files → clean text.")
    chunking: ChunkingSettings = Field(default_factory=ChunkingSettings, description="Clean text → chunks.")
    distill: DistillSettings = Field(default_factory=DistillSettings, description="Chunks → training items.")
    curate: CurateSettings = Field(default_factory=CurateSettings, description="Scores, duplicates, quotas, gates, review sampling.")
    export: ExportSettings = Field(default_factory=ExportSettings, description="Approved items → versioned snapshots.")
    review: ReviewSettings = Field(default_factory=ReviewSettings, description="The review web app.")
    train: TrainSettings = Field(default_factory=TrainSettings, description="Training defaults (a train.toml overrides).")


def load_settings(path: Path) -> Settings:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found — run `stillroom init` to create it") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return validate_settings(data, path)


def validate_settings(data: dict[str, Any], path: Path | str = "stillroom.toml") -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        lines = [f"{path}: {len(e.errors())} invalid setting(s):"]
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                allowed = ", ".join(_allowed_keys(Settings, err["loc"][:-1]))
                lines.append(f"  {key}: unknown key; allowed here: {allowed}")
            else:
                lines.append(f"  {key}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("\n".join(lines)) from None


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    for part in loc:
        field = model.model_fields.get(str(part))
        ann = field.annotation if field else None
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        else:
            return []
    return sorted(model.model_fields)


def default_toml() -> str:
    """stillroom.toml as `init` writes it: every setting at its default, each with its comment."""
    out = ["# stillroom project settings. Every key is shown at its default; unknown keys are errors.",
           "# API keys never go here: use environment variables or a key file (see README)."]
    defaults = Settings()
    for name, field in Settings.model_fields.items():
        out += _table_lines(name, field.description, getattr(defaults, name))
    return "\n".join(out) + "\n"


def _table_lines(path: str, description: str | None, section: BaseModel) -> list[str]:
    """Plain keys first, then nested settings as their own [a.b] tables, so each stays editable."""
    lines = ["", f"# {description}" if description else "", f"[{path}]"]
    lines = [line for line in lines if line or line == ""]
    nested = []
    for key, field in type(section).model_fields.items():
        value = getattr(section, key)
        if isinstance(value, BaseModel):
            nested.append((f"{path}.{key}", field.description, value))
        elif isinstance(value, dict) and value and all(isinstance(v, BaseModel) for v in value.values()):
            nested += [(f"{path}.{key}.{k}", field.description if i == 0 else None, v)
                       for i, (k, v) in enumerate(value.items())]
        else:
            if field.description:
                lines.append(f"# {field.description}")
            lines.append(f"{key} = {_toml_value(value)}")
    for sub_path, sub_description, sub in nested:
        lines += _table_lines(sub_path, sub_description, sub)
    return lines


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, BaseModel):
        return _toml_value(v.model_dump())
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _toml_key(key: str) -> str:
    """Bare keys are letters, digits, - and _; anything else (a model name with a dot) is quoted."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_value(key)
