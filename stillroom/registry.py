"""Name → implementation registries. Built-ins register exactly as an extension would."""

from __future__ import annotations

import importlib
from typing import Callable, Generic, Iterable, TypeVar

from stillroom.errors import UnknownName

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
