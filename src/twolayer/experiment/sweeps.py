"""Sweep resolution: a spec's ``sweep`` and ``zip`` keys parsed into paths of a RunConfig,
applied point by point to the spec's run sections, and each point validated.

Every problem is collected and reported at once as a
:class:`~twolayer.experiment.errors.SpecError` (a problem that occurs at many points once, with
the points). :func:`resolve_points` gives the validated config of every point;
:func:`twolayer.experiment.spec.load_spec_with_runs` turns them into runs (points x seeds), and
:mod:`twolayer.experiment.lazy` applies :func:`point_data` one point at a time for sweeps too
large to list. Depends on the paths, the YAML reader (line numbers) and the error rewriting;
the spec model is only a type here.
"""

from __future__ import annotations

import copy
import json
import typing
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ValidationError

from twolayer.config import RunConfig
from twolayer.experiment.errors import Problem, SpecError
from twolayer.experiment.paths import (
    PathT,
    _model_at,
    _pick_model,
    _unwrap,
    format_path,
    parse_key,
    set_path,
)
from twolayer.experiment.spec_errors import _translate
from twolayer.experiment.spec_yaml import _line

if TYPE_CHECKING:  # the spec module imports this one (Spec.runs): the model is a type here only
    from twolayer.experiment.spec import Spec


def _fill_default_lists(root: type[BaseModel], data: dict[str, Any], path: PathT) -> None:
    """Where ``path`` indexes into a list that the spec leaves out, write the field's default
    list there, so that ``train.steps[0].eta.c`` can be swept without writing ``steps:`` (one
    step is the documented default, docs/spec.md). Elements are written by their non-default
    values only (``{}`` for a default step), so the resolved run is the same as if the user had
    written the default list out. Paths that do not lead to such a list are left alone; the
    caller reports them."""
    tp: Any = root
    cur: Any = data
    for i, part in enumerate(path[:-1]):
        options = _unwrap(tp)
        if isinstance(part, int):
            lists = [t for t in options if typing.get_origin(t) is list]
            if not lists or not isinstance(cur, list) or not -len(cur) <= part < len(cur):
                return
            tp, cur = (typing.get_args(lists[0]) or (Any,))[0], cur[part]
            continue
        model = _pick_model(options, cur)
        if model is None or not isinstance(cur, dict) or part not in model.model_fields:
            return
        field_ = model.model_fields[part]
        if cur.get(part) is None and isinstance(path[i + 1], int) and field_.default_factory:
            default = field_.get_default(call_default_factory=True)
            if not isinstance(default, list):
                return
            cur[part] = [
                x.model_dump(mode="json", exclude_defaults=True) if isinstance(x, BaseModel)
                else copy.deepcopy(x)
                for x in default
            ]
        tp, cur = field_.annotation, cur.get(part)


def _load_plugins(spec: Spec, source: str, node: yaml.Node | None) -> None:
    """Import the spec's plugin modules, so that their components are registered before the
    run sections are validated; a module that cannot be imported is a SpecError."""
    from twolayer.plugins import PluginError, load_plugins

    problems = []
    for i, name in enumerate(spec.plugins):
        try:
            load_plugins([name])
        except PluginError as exc:
            path = ("plugins", i)
            problems.append(Problem(format_path(path), str(exc), _line(node, path)))
    if problems:
        raise SpecError(problems, source)


def sweep_key_paths(spec: Spec, source: str, node: yaml.Node | None) -> dict[str, PathT]:
    """Each sweep and zip key parsed into its path in a RunConfig (plugins imported first);
    SpecError if a key matches no field."""
    _load_plugins(spec, source, node)
    base = spec.base_sections()
    problems: dict[tuple[str, str], Problem] = {}
    keys: dict[str, PathT] = {}
    for section in ("sweep", "zip"):
        for key in getattr(spec, section):
            try:
                path = parse_key(key)
            except ValueError as exc:
                problems[(key, "")] = Problem(f"{section}.{key}", str(exc), _line(node, (section,)))
                continue
            _, err = _model_at(RunConfig, base, path)
            if err is not None:
                msg = f"sweep key {key!r} matches no field: {err}"
                problems[(key, "")] = Problem(f"{section}.{key}", msg, _line(node, (section, key)))
            keys[key] = path
    if problems:
        raise SpecError(list(problems.values()), source)
    return keys


def point_data(base: dict[str, Any], keys: dict[str, PathT], point: dict[str, Any]
               ) -> dict[str, Any]:
    """The run sections of one sweep point: a copy of ``base`` (:meth:`Spec.base_sections`)
    with the point's values set (ValueError if one cannot be)."""
    data = copy.deepcopy(base)
    for key, value in point.items():
        _fill_default_lists(RunConfig, data, keys[key])
        set_path(data, keys[key], value, create=True)
    return data

def resolve_points(
    spec: Spec, source: str, node: yaml.Node | None
) -> list[tuple[dict[str, Any], RunConfig]]:
    """Each sweep point of ``spec`` (in the order of :meth:`Spec.points`) with its validated
    RunConfig; points that resolve to the same sections share one config object.

    Raises
    ------
    SpecError
        Every problem of every point at once: a sweep key that matches no field, a value that
        cannot be set, a point that is not a valid RunConfig.
    """
    keys = sweep_key_paths(spec, source, node)
    base = spec.base_sections()
    problems: dict[tuple[str, str], Problem] = {}
    resolved: list[tuple[dict[str, Any], RunConfig]] = []
    cache: dict[str, RunConfig] = {}
    # A problem not traced to one sweep key is the same text at every point it occurs at:
    # report it once, with the points (none named when it occurs at all of them).
    at_points: dict[Problem, list[dict[str, Any]]] = {}
    points = spec.points()
    for point in points:
        try:
            data = point_data(base, keys, point)
        except ValueError as exc:
            problems.setdefault(("sweep", str(exc)), Problem("sweep", f"cannot apply: {exc}"))
            continue
        text = json.dumps(data, sort_keys=True, default=repr)
        if text not in cache:
            try:
                cache[text] = RunConfig.model_validate(data)
            except ValidationError as exc:
                for p, from_key in _translate(exc, data, RunConfig, node, point, keys):
                    if from_key or not point:
                        problems.setdefault((p.path, p.message), p)
                    else:
                        at_points.setdefault(p, []).append(point)
                continue
            except Exception as exc:  # a component raised on odd input: still the user's input
                p = Problem("", f"invalid value ({type(exc).__name__}: {exc})")
                if point:
                    at_points.setdefault(p, []).append(point)
                else:
                    problems.setdefault(("", p.message), p)
                continue
        resolved.append((point, cache[text]))
    for p, where in at_points.items():
        suffix = "" if len(where) == len(points) else f" ({_points_text(where)})"
        problems.setdefault((p.path, p.message + suffix), replace(p, message=p.message + suffix))
    if problems:
        raise SpecError(list(problems.values()), source)
    return resolved


def _points_text(points: list[dict[str, Any]], shown: int = 3) -> str:
    """``sweep point a=1`` or ``sweep points a=1; a=2; and 5 more``."""
    if len(points) == 1:
        return f"sweep point {_point_text(points[0])}"
    listed = "; ".join(_point_text(p) for p in points[:shown])
    more = f"; and {len(points) - shown} more" if len(points) > shown else ""
    return f"sweep points {listed}{more}"


def _point_text(point: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in point.items())
