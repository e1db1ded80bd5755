"""Lazy package exports (PEP 562), so that ``import twolayer`` and the ``twolayer`` command
load SciPy, pandas and pydantic only when something that needs them is first used: ``twolayer
--help`` or ``twolayer status`` then start in a fraction of a second instead of ~2 s."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any


def lazy_exports(
    package: str, namespace: dict[str, Any], exports: dict[str, str],
    submodules: Iterable[str] = (),
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``exports`` maps a public name to the
    module defining it; ``submodules`` are reachable as attributes without an import. A loaded
    name is stored in ``namespace`` (the package's globals), so each is looked up once."""
    subs = frozenset(submodules)

    def __getattr__(name: str) -> Any:
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
        elif name in subs:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports, *subs})

    return __getattr__, __dir__
