"""What twolayer.experiment.spec_errors reads from pydantic, pinned against the installed version.

The error rewriting depends on details of pydantic-core's errors that are not a documented
contract: the tags it puts into error locations (a discriminated union's member, the types of a
plain union), the error types and their ``ctx``, the prefixes of the messages. Each test here
validates raw data with pydantic directly (not through the rewriting) and asserts the shape the
rewriting expects, then what the rewriting makes of it; an upgrade of pydantic that changes one
of them fails here, by name, rather than turning a clear message into a confusing one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pydantic
import pytest
from pydantic import ValidationError

from twolayer.config import RunConfig
from twolayer.experiment.spec import Spec
from twolayer.experiment.spec_errors import _clean_loc, _looks_like_tag, _translate
from twolayer.registry import PROTOCOLS

ROOT = Path(__file__).resolve().parents[2]
BASE = {"teacher": {"name": "single_index", "d": 10}, "student": {"N": 5}}


def _errors(model: type[pydantic.BaseModel], data: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return info.value.errors()


def _messages(model: type[pydantic.BaseModel], data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return [(p.path, p.message) for p, _ in _translate(info.value, data, model, None)]


def test_installed_pydantic_is_in_the_supported_range():
    # the rewriting is written against pydantic 2 (>= 2.5, as pyproject.toml pins it)
    major, minor = (int(x) for x in pydantic.VERSION.split(".")[:2])
    assert major == 2 and minor >= 5, pydantic.VERSION
    pin = re.search(r'"pydantic([^"]*)"', (ROOT / "pyproject.toml").read_text())
    assert pin is not None and pin.group(1) == ">=2.5,<3", pin


def test_discriminated_union_member_is_tagged_by_protocol_name():
    data = {**BASE, "train": {"protocol": "gd", "n": 10, "bogus": 1}}
    (err,) = _errors(RunConfig, data)
    assert err["type"] == "extra_forbidden"
    assert err["loc"] == ("train", "gd", "bogus")  # the member's tag sits in the location
    assert _looks_like_tag("gd")
    assert _clean_loc(err["loc"], data) == ("train", "bogus")
    (msg,) = _messages(RunConfig, data)
    assert msg[0] == "train.bogus" and msg[1].startswith("unknown key 'bogus'")


def test_unknown_protocol_tag_error_shape():
    data = {**BASE, "train": {"protocol": "gdx", "n": 10}}
    (err,) = _errors(RunConfig, data)
    assert err["type"] == "union_tag_invalid"
    assert err["loc"] == ("train",)
    ctx = err["ctx"]
    assert ctx["discriminator"] == "'protocol'" and ctx["tag"] == "gdx"
    assert "'gd'" in ctx["expected_tags"] and "'giant_steps'" in ctx["expected_tags"]
    (msg,) = _messages(RunConfig, data)
    assert msg[0] == "train.protocol"
    assert msg[1].startswith("got 'gdx'; expected one of 'giant_steps', ")
    assert msg[1].endswith("(did you mean 'gd'?)")


def test_missing_protocol_tag_error_shape():
    data = {**BASE, "train": {"n": 10}}
    (err,) = _errors(RunConfig, data)
    assert err["type"] == "union_tag_not_found"
    assert err["loc"] == ("train",)
    assert err["ctx"] == {"discriminator": "'protocol'"}
    (msg,) = _messages(RunConfig, data)
    assert msg[0] == "train.protocol"
    # no expected_tags in ctx: the message lists the registered protocols itself
    assert msg[1] == "required key is missing; expected one of " + ", ".join(
        repr(name) for name in PROTOCOLS.names()
    )


def test_plain_union_members_are_tagged_by_type():
    # seeds: PositiveInt | list[NonNegativeInt]; each member's error carries the member's tag,
    # which the rewriting drops where the data goes on past it
    data = {"name": "a", "seeds": [1, "x"], "teacher": {}, "student": {}}
    errs = _errors(Spec, data)
    assert [e["loc"] for e in errs] == [
        ("seeds", "constrained-int"),
        ("seeds", "list[constrained-int]", 1),
    ]
    assert _looks_like_tag("constrained-int") and _looks_like_tag("list[constrained-int]")
    assert _clean_loc(errs[1]["loc"], data) == ("seeds", 1)
    assert ("seeds[1]", "got 'x'; expected a valid integer, unable to parse string as an integer"
            ) in _messages(Spec, data)


def test_nested_list_location_and_missing_field():
    data = {**BASE, "train": {"protocol": "giant_steps", "steps": [{"eta": "x"}]}}
    errs = {e["type"]: e for e in _errors(RunConfig, data)}
    assert errs["missing"]["loc"] == ("train", "giant_steps", "n")
    assert errs["model_type"]["loc"] == ("train", "giant_steps", "steps", 0, "eta")
    assert _clean_loc(errs["model_type"]["loc"], data) == ("train", "steps", 0, "eta")
    assert dict(_messages(RunConfig, data))["train.n"].startswith("required key is missing")


def test_value_error_prefix_and_model_validator_location():
    data = {**BASE, "teacher": {"name": "xor", "d": 8, "label_noise": 0.7}}
    (err,) = _errors(RunConfig, data)
    assert err["type"] == "value_error"
    assert err["loc"] == ("teacher",)  # an after-validator adds no tag to the location
    assert err["msg"].startswith("Value error, ")
    assert _messages(RunConfig, data) == [
        ("teacher.label_noise", "xor: label_noise must be in [0, 1/2), got 0.7")
    ]


def test_literal_error_message_and_context():
    data = {"name": "a", "teacher": {}, "student": {}, "executor": {"kind": "dusk"}}
    (err,) = _errors(Spec, data)
    assert err["type"] == "literal_error" and err["loc"] == ("executor", "kind")
    assert err["msg"] == "Input should be 'serial', 'local', 'dask' or 'slurm'"
    assert err["ctx"]["expected"] == "'serial', 'local', 'dask' or 'slurm'"
    assert _messages(Spec, data) == [
        ("executor.kind",
         "got 'dusk'; expected 'serial', 'local', 'dask' or 'slurm' (did you mean 'dask'?)")
    ]


def test_a_scalar_that_fails_every_arm_of_a_union_is_named_by_its_key_alone():
    # seeds: x fails both arms of int | list[int]; pydantic locates each at ('seeds', tag). The
    # message names the key the user wrote, not pydantic's tag (it said seeds.constrained-int).
    from twolayer.experiment.errors import SpecError
    from twolayer.experiment.spec import load_spec

    spec = {"name": "a", "seeds": "x", "teacher": {"name": "single_index", "d": 10},
            "student": {"N": 10}}
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    lines = str(info.value).splitlines()[1:]
    assert lines and all(line.startswith("  - seeds: got 'x'") for line in lines), lines
