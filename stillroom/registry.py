"""Name → implementation registries. Built-ins register exactly as an extension would."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Callable, Generic, Iterable, TypeVar

from stillroom.errors import ConfigError, UnknownName

T = TypeVar("T")


class Registry(Generic[T]):
    """`@registry.register("name")` on a class or function; `registry.get("name")` finds it.

    `modules` are imported on first lookup, so registering a built-in costs nothing until it is used
    and adding one is one new file plus one line here.
    """

    def __init__(self, kind: str, modules: Iterable[str] = ()) -> None:
        self.kind = kind
        self._modules = tuple(modules)
        self._loaded = False
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return deco

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for mod in self._modules:
                importlib.import_module(mod)

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise UnknownName(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        self._load()
        return sorted(self._items.items())


def load_plugins(root: Path, files: Iterable[str]) -> list[ModuleType]:
    """Import a project's `[project] plugins` files (paths relative to `root`), each once per process.

    A plugin registers what it adds with the same decorators the built-ins use, so after this every
    registry knows its names. An error inside a plugin is the plugin's bug and keeps its traceback.
    """
    modules = []
    for rel in files:
        path = (root / rel).resolve()
        if path.suffix != ".py" or not path.is_file():
            raise ConfigError(f"{root / 'stillroom.toml'}: [project] plugins names {rel!r}, which is not a .py file "
                              f"in {root} — fix the path (relative to the project) or remove it")
        # One module per file, named after its path: loading the project again imports nothing twice.
        name = f"stillroom_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
        if name not in sys.modules:
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # before running it, as an import would (dataclasses, pickling look it up)
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
        modules.append(sys.modules[name])
    return modules
