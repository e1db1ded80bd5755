"""The JSON Schema of a spec (``twolayer schema``), for an editor's completion and checking.

It is pydantic's ``model_json_schema`` of :class:`twolayer.experiment.spec.Spec`, with the run
sections (which ``Spec`` keeps as plain data, checked when the sweep is resolved) replaced by
those of :class:`twolayer.config.RunConfig`, and the spec's shorthands written in:

- an activation or a measurement may be a plain string (``activation: relu``),
- a step size may be a plain number (``eta: 0.5``),
- a ``stages`` entry is a ``gd`` section without ``n``,
- ``name`` may be left out of a file (the file's name is taken, docs/spec.md).

The schema cannot know which names are registered (plugins add their own): a misspelt
activation passes the schema and is reported by ``twolayer run --dry-run``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

#: $defs a plain scalar may stand for (the models' ``mode="before"`` validators accept it).
SHORTHANDS: dict[str, dict[str, Any]] = {
    "ActivationConfig": {"type": "string", "description": "a registered activation by name"},
    "MeasureItem": {"type": "string", "description": "a registered measurement by name"},
    "StepSizeConfig": {"type": "number", "description": "eta = this number (c, alpha = 0)"},
}

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def spec_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a twolayer spec file.

    Returns
    -------
    dict
        A JSON-serialisable schema: the experiment's own keys (``name``, ``seeds``, ``sweep``,
        ...) and the run sections with every field's type, default and description.
    """
    from twolayer.config import RunConfig
    from twolayer.experiment.spec import RUN_SECTIONS, Spec

    schema = Spec.model_json_schema()
    run = RunConfig.model_json_schema()
    defs = {**schema.pop("$defs", {}), **run["$defs"]}
    for section in RUN_SECTIONS:
        schema["properties"][section] = run["properties"][section]
    schema["required"] = [k for k in schema.get("required", []) if k != "name"]
    for name, short in SHORTHANDS.items():
        if name in defs:
            model = defs[name]
            defs[name] = {"anyOf": [short, model], "description": model.get("description", "")}
    if "GDConfig" in defs and "StagesConfig" in defs:
        stage = copy.deepcopy(defs["GDConfig"])
        stage["required"] = [k for k in stage.get("required", []) if k != "n"]
        stage["description"] = "a gd section without n (given once by the stages section)"
        defs["GDStage"] = stage
        defs["StagesConfig"]["properties"]["stages"]["items"] = {"$ref": "#/$defs/GDStage"}
    schema["$defs"] = defs
    schema["title"] = "twolayer spec"
    return {"$schema": SCHEMA_DIALECT, **schema}


def spec_schema_json() -> str:
    """:func:`spec_schema` as indented JSON text (what ``twolayer schema`` prints)."""
    return json.dumps(spec_schema(), indent=2, sort_keys=True)
