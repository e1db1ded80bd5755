"""Plugins: your own activations, links, teachers, measurements, training protocols or losses,
from your own module.

A plugin is an importable module that registers components when it is imported::

    # my_lab/components.py
    from twolayer.activations import ACTIVATIONS, Activation

    @ACTIVATIONS.register("cube")
    def _cube() -> Activation:
        return Activation("cube", lambda z: z**3, lambda z: 3 * z**2)

Two ways to have it imported (docs/extending.md):

* **Named in a spec**: ``plugins: [my_lab.components]`` at the top level. The spec loader imports
  the modules before it validates the run sections (:func:`load_plugins`); the local, Dask and
  slurm executors send the list with every group of runs (every job) and the worker imports
  it before running (``twolayer.experiment.record.execute_group``). A module that cannot be
  imported is a :class:`~twolayer.experiment.errors.SpecError` naming ``plugins[i]``.
* **Installed, by entry point**: a package that declares, in its ``pyproject.toml``::

      [project.entry-points."twolayer.plugins"]
      my_lab = "my_lab.components"

  is loaded once per process, lazily: the first time any registry is asked for a name it does
  not have (:func:`load_entry_points`). That happens in every process that looks names up, so
  workers load the entry points too (a spec whose ``train.protocol`` no registered protocol
  has asks the protocol registry, so an installed protocol is found the same way). An entry
  point may also name a function
  (``"my_lab:register"``), which is then called with no arguments. An entry point that fails
  to load is a :class:`PluginWarning`, not an error: the lookup then fails as usual.
"""

from __future__ import annotations

import importlib
import re
import threading
import warnings
from collections.abc import Iterable
from types import ModuleType
from typing import Any

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginError",
    "PluginWarning",
    "entry_points",
    "load_entry_points",
    "load_plugins",
    "loaded_plugins",
]

ENTRY_POINT_GROUP = "twolayer.plugins"
"""The entry-point group whose modules (or functions) register components."""

_MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")

_loaded: dict[str, None] = {}  # module names imported by load_plugins, in order
_entry_points_state = "no"  # "no", "loading", "done"
_entry_points_lock = threading.RLock()


class PluginError(ImportError):
    """A plugin module cannot be imported.

    Attributes
    ----------
    module : str
        The module name as given.
    index : int
        Its position in the list given to :func:`load_plugins`.
    reason : str
        What went wrong (the exception the import raised, as text).
    """

    def __init__(self, module: str, index: int, reason: str) -> None:
        self.module, self.index, self.reason = module, index, reason
        super().__init__(f"cannot import plugin module {module!r}: {reason}")


class PluginWarning(UserWarning):
    """An entry point of the ``twolayer.plugins`` group failed to load."""


def load_plugins(names: Iterable[str]) -> list[ModuleType]:
    """Import plugin modules (each registers its components on import), in order.

    Importing is idempotent: a module already imported is not executed again.

    Parameters
    ----------
    names : iterable of str
        Importable module names (``"my_lab.components"``).

    Returns
    -------
    list of module

    Raises
    ------
    PluginError
        For the first module that cannot be imported: not a module name, not found, or its
        import raised (the original exception is chained).
    """
    modules = []
    for index, name in enumerate(names):
        if not isinstance(name, str) or not _MODULE_NAME.match(name):
            raise PluginError(
                str(name), index, "not a module name (expected a dotted name like my_lab.acts)"
            )
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            hint = ""
            if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
                hint = " (is it installed, or is its folder on PYTHONPATH?)"
            raise PluginError(name, index, f"{type(exc).__name__}: {exc}{hint}") from exc
        except Exception as exc:  # the module itself raised while being imported
            raise PluginError(name, index, f"{type(exc).__name__}: {exc}") from exc
        _loaded.setdefault(name)
        modules.append(module)
    return modules


def loaded_plugins() -> list[str]:
    """Module names imported by :func:`load_plugins` in this process, in order."""
    return list(_loaded)


def entry_points() -> list[object]:
    """The installed entry points of :data:`ENTRY_POINT_GROUP` (importlib.metadata)."""
    from importlib.metadata import entry_points as _entry_points

    return list(_entry_points(group=ENTRY_POINT_GROUP))


def load_entry_points() -> bool:
    """Load every entry point of :data:`ENTRY_POINT_GROUP`, once per process.

    A registry calls this when it is asked for a name it does not have, then looks again.
    An entry point naming a module imports it; one naming a callable calls it with no
    arguments. Failures are :class:`PluginWarning` warnings.

    Returns
    -------
    bool
        True when this call loaded them (the first call), False afterwards. Another thread
        asking while they load waits until they are loaded; a lookup made by a plugin while it
        is being loaded (same thread) returns False at once instead of recursing.
    """
    global _entry_points_state
    if _entry_points_state == "done":
        return False
    with _entry_points_lock:
        if _entry_points_state != "no":
            return False
        _entry_points_state = "loading"
        try:
            for ep in entry_points():
                _load_entry_point(ep)
        finally:
            _entry_points_state = "done"
    return True


def _load_entry_point(ep: Any) -> None:
    try:
        obj = ep.load()
        if callable(obj) and not isinstance(obj, ModuleType | type):
            obj()
    except Exception as exc:
        warnings.warn(
            f"twolayer plugin entry point {ep.name!r} = {ep.value!r} failed to load: "
            f"{type(exc).__name__}: {exc}",
            PluginWarning,
            stacklevel=4,
        )
