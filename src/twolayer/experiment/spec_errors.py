"""Pydantic's validation errors rewritten as :class:`~twolayer.experiment.errors.Problem`s: one
clear message per error, naming the key path as the user wrote it, the value, what was expected
(with a "did you mean" for a near miss) and the YAML line.

This reads pydantic-core's error details, some of them internal: the location tuples carry
tags for union members and validators (``'gd'``, ``'int'``, ``'function-after[...]'``,
``'list[...]'``), which :func:`_clean_loc` drops by following the data; the error types
``extra_forbidden``, ``missing``, ``union_tag_invalid``/``union_tag_not_found`` (with their
``ctx``), ``value_error`` (message prefix ``"Value error, "``) and ``literal_error``
(``"Input should be ..."``). pyproject.toml pins pydantic to ``>=2.5,<3``;
``tests/experiment/test_experiment_spec_errors.py`` checks the shapes this module depends on
against the installed pydantic (it passes on 2.5.3 and 2.14.4), so an upgrade that changes
them fails there by name.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from twolayer.experiment.errors import Problem
from twolayer.experiment.paths import (
    PathT,
    _field_names,
    _get,
    _model_at,
    _pick_model,
    _unwrap,
    format_path,
    parse_key,
)
from twolayer.experiment.spec_yaml import _line
from twolayer.registry import PROTOCOLS


def _clean_loc(loc: tuple[Any, ...], data: Any) -> PathT:
    """Drop pydantic's union tags and validator names from ``loc`` by following the data."""
    out: list[str | int] = []
    cur = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(cur, dict):
            if part in cur:
                out.append(part)
                cur = cur[part]
            elif last or not isinstance(part, str) or not _looks_like_tag(part):
                out.append(part)
                cur = None
            continue
        if isinstance(cur, list) and isinstance(part, int):
            out.append(part)
            cur = cur[part] if -len(cur) <= part < len(cur) else None
            continue
        # a tag after a value that is not a mapping cannot be one of its keys, last or not
        # (``seeds: x`` fails the union's int and list[int] arms at ('seeds', tag))
        if isinstance(part, str) and _looks_like_tag(part) and cur is not None:
            continue
        out.append(part)
        cur = None
    return tuple(out)


#: Tags pydantic puts in error locations besides the protocols' (the types of a union).
_TYPE_TAGS = frozenset({"str", "int", "float", "list", "dict", "bool"})


def _looks_like_tag(part: str) -> bool:
    return (
        part in _TYPE_TAGS
        or part in PROTOCOLS  # the train union's tags: the registered protocols (plugins too)
        or "[" in part
        or part.startswith(("function-", "constrained-", "lax-", "json-or-python"))
    )


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _translate(
    exc: ValidationError,
    data: Any,
    root: type[BaseModel],
    node: yaml.Node | None,
    point: dict[str, Any] | None = None,
    keys: dict[str, PathT] | None = None,
) -> list[tuple[Problem, bool]]:
    """Problems of a pydantic error, each with whether it was traced to one of the sweep
    ``keys`` (its message then names the key and the value of ``point``)."""
    problems: list[tuple[Problem, bool]] = []
    for err in exc.errors():
        path = _clean_loc(tuple(err["loc"]), data)
        kind = err["type"]
        ctx = err.get("ctx") or {}
        value = err.get("input")
        msg = str(err["msg"])
        if kind == "extra_forbidden":
            parent_tp, _ = _model_at(root, data, path[:-1])
            model = _pick_model(_unwrap(parent_tp), _get(data, path[:-1])) if parent_tp else None
            fields = _field_names(model) if model else []
            close = difflib.get_close_matches(str(path[-1]), fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            allowed = f"; expected one of: {', '.join(fields)}" if fields else ""
            message = f"unknown key {path[-1]!r}{hint}{allowed}"
        elif kind == "missing":
            tp, _ = _model_at(root, data, path[:-1])
            model = _pick_model(_unwrap(tp), _get(data, path[:-1])) if tp else None
            info: FieldInfo | None = model.model_fields.get(str(path[-1])) if model else None
            what = f" ({info.description})" if info is not None and info.description else ""
            message = f"required key is missing{what}"
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            disc = str(ctx.get("discriminator", "'protocol'")).strip("'")
            registered = ", ".join(repr(name) for name in PROTOCOLS.names())
            expected = str(ctx.get("expected_tags", registered))
            path = (*path, disc)
            tag = ctx.get("tag")
            if tag is None:
                message = f"required key is missing; expected one of {expected}"
            else:
                message = f"got {tag!r}; expected one of {expected}{_did_you_mean(tag, expected)}"
        elif kind == "value_error":
            text = msg.removeprefix("Value error, ")
            if not path:  # a whole-config check naming its key: "measure[2]: ..."
                path, text = _named_path(text, data)
                value = _get(data, path) if path else value
            path = _refine_value_path(path, value, text)
            message = text
        else:
            expected = msg.removeprefix("Input should be ").removeprefix("Value should be ")
            hint = ""
            if kind == "literal_error" and isinstance(value, str):
                hint = _did_you_mean(value, str(ctx.get("expected", "")))
            message = f"got {_short(value)}; expected {expected}{hint}"
        from_sweep = ""
        # a whole-config error (empty path) is not traced to any one key
        for key, kp in (keys or {}).items() if point and path else ():
            if tuple(path[: len(kp)]) == kp or tuple(kp[: len(path)]) == tuple(path):
                from_sweep = f" (from sweep key {key!r} = {_short(point[key])})"
                break
        problems.append(
            (Problem(format_path(path), message + from_sweep, _line(node, path)), bool(from_sweep))
        )
    return problems


def _did_you_mean(value: Any, expected: str) -> str:
    options = re.findall(r"'([^']*)'", expected)
    close = difflib.get_close_matches(str(value), options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _named_path(text: str, data: Any) -> tuple[PathT, str]:
    """``(path, rest)`` when ``text`` starts with a key path present in ``data`` and a colon
    (``"measure[2]: loss 'square' is not Lipschitz"``), else ``((), text)``."""
    m = re.match(r"([A-Za-z_][\w.\[\]]*): (.*)", text, re.S)
    if m:
        try:
            path = parse_key(m.group(1))
        except ValueError:
            return (), text
        if _get(data, path) is not PydanticUndefined:
            return path, m.group(2)
    return (), text


def _refine_value_path(path: PathT, value: Any, text: str) -> PathT:
    """Point a component's ValueError at the option it names (``teacher.label_noise``)."""
    if not isinstance(value, dict) or not path:
        return path
    m = re.search(r"has no option '([^']+)'", text)
    if m and m.group(1) in value:
        return (*path, m.group(1))
    for key in value:
        if key != "name" and isinstance(key, str) and re.search(rf"\b{re.escape(key)}\b", text):
            return (*path, key)
    if "name" in value and f"{value['name']!r}" in text and text.startswith("unknown"):
        return (*path, "name")
    return path
