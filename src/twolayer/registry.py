"""A small registry with helpful failures, one instance per kind of thing.

Used for activations, teachers, losses, training protocols, measurements and recipes, so that
adding a new one is one decorated function or class (docs/extending.md), and a typo gets a
"did you mean" answer. A lookup of a name no registry has first loads the installed plugins of
the entry-point group ``twolayer.plugins`` (once per process,
:func:`twolayer.plugins.load_entry_points`).

The registries of protocols (:data:`PROTOCOLS`) and measurements (:data:`MEASUREMENTS`) are
created here, at the bottom of the package, because the configuration layer
(:mod:`twolayer.config`) looks their names up while it validates a run but sits below the
modules that define them (``twolayer.train``, ``twolayer.measure``). Each knows the package
that registers its built-in entries and imports it the first time it is asked anything, so
``twolayer.config`` reads them without importing either package.
"""

from __future__ import annotations

import difflib
import importlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")
_BUILTINS_LOCK = threading.RLock()


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
    builtins : str, optional
        A module whose import registers the built-in entries; imported (once) the first time
        the registry is asked for a name, its names or its size, not at creation.
    """

    def __init__(self, kind: str, builtins: str | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._builtins = builtins
        self._listeners: list[Callable[[str, T], None]] = []

    def _load_builtins(self) -> None:
        if self._builtins is None:
            return
        with _BUILTINS_LOCK:  # another thread waits until every built-in entry is registered
            module = self._builtins
            if module is not None:
                importlib.import_module(module)
                self._builtins = None

    def on_add(self, listener: Callable[[str, T], None]) -> None:
        """Call ``listener(name, obj)`` after every later :meth:`add`, and ``listener(name,
        None)`` after a :meth:`remove` (e.g. to rebuild a model whose schema lists the
        registered entries)."""
        self._listeners.append(listener)

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj
        for listener in self._listeners:
            listener(name, obj)

    def remove(self, name: str) -> T:
        """Unregister ``name`` (e.g. a component a test registered for a while) and tell the
        listeners (``listener(name, None)``); KeyError if it is not registered."""
        obj = self._items.pop(name)
        for listener in self._listeners:
            listener(name, None)  # type: ignore[arg-type]
        return obj

    def get(self, name: str) -> T:
        self._load_builtins()
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
        self._load_builtins()
        known = ", ".join(sorted(self._items))
        msg = f"unknown {self.kind} {name!r}; registered: {known}"
        close = difflib.get_close_matches(str(name), list(self._items), n=1)
        if close:
            msg += f" (did you mean {close[0]!r}?)"
        return msg

    def names(self) -> list[str]:
        self._load_builtins()
        return sorted(self._items)

    def values(self) -> list[T]:
        """The entries in the order they were registered."""
        self._load_builtins()
        return list(self._items.values())

    def __contains__(self, name: object) -> bool:
        self._load_builtins()
        if name in self._items:
            return True
        _load_entry_points()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        self._load_builtins()
        return iter(sorted(self._items))

    def __len__(self) -> int:
        self._load_builtins()
        return len(self._items)


#: Training protocols (:class:`twolayer.train.protocol.Protocol`), by ``train.protocol`` name.
PROTOCOLS: Registry[Any] = Registry("protocol", builtins="twolayer.train")
#: Measurements (:class:`twolayer.measure.registry.Measurement`), by name.
MEASUREMENTS: Registry[Any] = Registry("measurement", builtins="twolayer.measure")


def _load_entry_points() -> None:
    """On a miss: load the installed plugins, once per process (twolayer.plugins)."""
    from twolayer.plugins import load_entry_points

    load_entry_points()
