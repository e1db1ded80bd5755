"""Key paths of a spec: ``"train.steps[0].eta.c"`` parsed, formatted, walked through the
config models, and set in plain data.

A path is a tuple of keys and list indices (:data:`PathT`). :func:`set_path` is the one
dotted-path setter: the sweep resolution (:mod:`twolayer.experiment.sweeps`) and the recipes'
quick-mode overrides (:func:`twolayer.recipes.base.set_dotted`) both set values through it.
The walk through the models (:func:`_model_at`) checks a sweep key against the fields of
:class:`twolayer.config.RunConfig`, choosing a protocol section's model by its ``protocol``
tag (twolayer.registry.PROTOCOLS). Depends on the config and the registry only.
"""

from __future__ import annotations

import copy
import difflib
import re
import types
import typing
from typing import Any, Union

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from twolayer.config import ProtocolConfig
from twolayer.registry import PROTOCOLS

PathT = tuple[str | int, ...]

_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_key(key: str) -> PathT:
    """``"train.steps[0].eta.c"`` (or ``"train.steps.0.eta.c"``) -> ``("train", "steps", 0, ...)``.

    Raises
    ------
    ValueError
        If the key is not a dotted path.
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"a sweep key must be a dotted path like 'student.N', got {key!r}")
    parts: list[str | int] = []
    pos = 0
    while pos < len(key):
        if key[pos] == "." and parts and pos + 1 < len(key) and key[pos + 1] != ".":
            pos += 1
        m = _TOKEN.match(key, pos)
        if m is None:
            raise ValueError(f"a sweep key must be a dotted path like 'student.N', got {key!r}")
        if m.group(2) is not None:
            if not parts:
                raise ValueError(f"a sweep key cannot start with an index, got {key!r}")
            parts.append(int(m.group(2)))
        else:
            token = m.group(1)
            parts.append(int(token) if token.isdigit() and parts else token)
        pos = m.end()
    return tuple(parts)


def format_path(path: typing.Sequence[str | int]) -> str:
    """``("train", "steps", 0, "eta")`` -> ``"train.steps[0].eta"``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _unwrap(tp: Any) -> list[Any]:
    """The alternatives of a type annotation (Optional/Union/Annotated stripped)."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (Union, types.UnionType):
        out = []
        for arg in typing.get_args(tp):
            out += _unwrap(arg)
        return out
    return [tp]


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _pick_model(options: list[Any], data: Any) -> type[BaseModel] | None:
    """Among union members, the model that ``data`` selects: a protocol section's is the
    registered protocol its ``protocol`` tag names (twolayer.registry.PROTOCOLS), None when
    the tag names none."""
    models = [t for t in options if _is_model(t)]
    if len(models) == 1 and models[0] is not ProtocolConfig:  # e.g. a stage: always a gd section
        return models[0]
    if any(issubclass(m, ProtocolConfig) for m in models):
        tag = data.get("protocol") if isinstance(data, dict) else None
        if not isinstance(tag, str) or tag not in PROTOCOLS:
            return None
        config: type[BaseModel] = PROTOCOLS.get(tag).config
        return config
    return None


def _field_names(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _model_at(root: type[BaseModel], data: Any, path: PathT) -> tuple[Any, str | None]:
    """Walk ``path`` through the model types, following ``data`` to choose union members.

    Returns (type at the end of the path or None if the path goes into free-form options,
    error message if a key matches no field).
    """
    tp: Any = root
    cur = data
    for i, part in enumerate(path):
        options = _unwrap(tp)
        if isinstance(part, int):
            lists = [t for t in options if typing.get_origin(t) is list]
            if not lists:
                return None, f"{format_path(path[:i]) or 'the spec'} is not a list"
            tp = typing.get_args(lists[0])[0] if typing.get_args(lists[0]) else Any
            cur = cur[part] if isinstance(cur, list) and -len(cur) <= part < len(cur) else None
            continue
        model = _pick_model(options, cur)
        if model is None:
            if any(t is Any or t is dict or typing.get_origin(t) is dict for t in options):
                return None, None
            where = format_path(path[:i]) or "the spec"
            return None, f"{where} has no sub-keys (found key {part!r})"
        if part not in model.model_fields:
            if model.model_config.get("extra") == "allow":
                return None, None  # registered component options: checked by the component
            close = difflib.get_close_matches(str(part), _field_names(model), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            where = format_path(path[:i]) or "the spec"
            return None, (
                f"{where} has no field {part!r}{hint}; its fields are: "
                f"{', '.join(_field_names(model))}"
            )
        tp = model.model_fields[part].annotation
        cur = cur.get(part) if isinstance(cur, dict) else None
    return tp, None


def _get(data: Any, path: PathT) -> Any:
    """The value at ``path`` in plain data, or PydanticUndefined where the path leads nowhere."""
    cur = data
    for part in path:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and -len(cur) <= part < len(cur):
            cur = cur[part]
        else:
            return PydanticUndefined
    return cur


def set_path(data: Any, path: PathT, value: Any, *, create: bool = False) -> None:
    """Set the value at ``path`` in nested dicts and lists to a deep copy of ``value``.

    The one dotted-path setter: a sweep point applied to a spec (:func:`point_data`,
    ``create=True``) and a recipe's quick-mode override (``twolayer.recipes.base.set_dotted``,
    ``create=False``).

    Parameters
    ----------
    data : dict
        Plain data (a spec's sections), changed in place.
    path : tuple of str and int
        Keys and list indices, as :func:`parse_key` returns them; not empty.
    value : Any
        Stored as a deep copy (the caller's value is never shared).
    create : bool
        False: every mapping and list on the way must exist; a missing one raises as indexing
        does (KeyError, IndexError, TypeError). True: missing or null mappings are created (a
        list where an index follows), the spec's shorthands are expanded on the way (an
        activation or measurement given by name becomes ``{"name": ...}``, a step size given
        by a number ``{"c": ...}``, as the config's validators read them), and a step that
        cannot be taken is a ValueError naming the path.
    """
    cur: Any = data
    for i, part in enumerate(path[:-1]):
        cur = _created_child(cur, path, i) if create else cur[part]
    last = path[-1]
    if create:
        if isinstance(last, int):
            if not isinstance(cur, list) or not -len(cur) <= last < len(cur):
                raise ValueError(f"{format_path(path[:-1])} has no element [{last}] in the spec")
        elif not isinstance(cur, dict):
            raise ValueError(f"{format_path(path[:-1])} is not a mapping")
    cur[last] = copy.deepcopy(value)


def _created_child(cur: Any, path: PathT, i: int) -> Any:
    """The container at ``path[i]`` inside ``cur`` for :func:`set_path` with ``create``: made
    if missing, a shorthand expanded; ValueError if ``cur`` cannot hold ``path[i]``."""
    part, nxt = path[i], path[i + 1]
    if isinstance(part, int):
        if not isinstance(cur, list) or not -len(cur) <= part < len(cur):
            n = len(cur) if isinstance(cur, list) else 0
            raise ValueError(
                f"{format_path(path[:i])} has {n} element(s) in the spec, no [{part}]"
            )
    else:
        if not isinstance(cur, dict):
            raise ValueError(f"{format_path(path[:i])} is not a mapping")
        if part not in cur or cur[part] is None:
            cur[part] = {} if not isinstance(nxt, int) else []
    child = cur[part]
    # the spec's shorthands: an activation/measurement given by name, a step size by number
    if isinstance(child, str) and not isinstance(nxt, int):
        child = cur[part] = {"name": child}
    elif isinstance(child, int | float) and not isinstance(child, bool):
        child = cur[part] = {"c": child}
    return child
