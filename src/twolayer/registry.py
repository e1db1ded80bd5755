"""A small registry with helpful failures, one instance per kind of thing.

Used for activations, teachers, protocols, measurements and recipes, so that adding a new one
is one decorated function or class and one line, and a typo gets a "did you mean" answer.
A lookup of a name no registry has first loads the installed plugins of the entry-point group
``twolayer.plugins`` (once per process, :func:`twolayer.plugins.load_entry_points`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError, ValueError):
    """Raised when a registry has no entry of the requested name."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """Name -> object mapping with a decorator to register and a did-you-mean lookup.

    Parameters
    ----------
    kind : str
        What the registry holds, used in error messages ("activation", "teacher", ...).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            pass
        _load_entry_points()
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        known = ", ".join(sorted(self._items))
        msg = f"unknown {self.kind} {name!r}; registered: {known}"
        close = difflib.get_close_matches(str(name), list(self._items), n=1)
        if close:
            msg += f" (did you mean {close[0]!r}?)"
        return msg

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        if name in self._items:
            return True
        _load_entry_points()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)


def _load_entry_points() -> None:
    """On a miss: load the installed plugins, once per process (twolayer.plugins)."""
    from twolayer.plugins import load_entry_points

    load_entry_points()
