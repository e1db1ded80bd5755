"""The one dotted-path setter (twolayer.experiment.paths.set_path), in the two modes its callers
use: a sweep point applied to a spec (``create=True``) and a recipe's quick override (strict)."""

from __future__ import annotations

import copy
import re

import pytest

from twolayer.experiment.paths import parse_key, set_path
from twolayer.recipes.base import set_dotted

SPEC = {
    "student": {"N": 16, "activation": "relu"},
    "train": {"protocol": "gd", "n": 32, "eta": 0.5, "steps": 3},
    "readout": {"lambdas": [1e-3, 1e-1]},
}


def test_create_mode_builds_mappings_and_expands_shorthands():
    data = copy.deepcopy(SPEC)
    set_path(data, parse_key("student.activation.scale"), 2.0, create=True)
    set_path(data, parse_key("train.eta.alpha"), 0.5, create=True)
    set_path(data, parse_key("evaluate.n_test"), 100, create=True)
    set_path(data, parse_key("readout.lambdas[1]"), 1.0, create=True)
    assert data["student"]["activation"] == {"name": "relu", "scale": 2.0}
    assert data["train"]["eta"] == {"c": 0.5, "alpha": 0.5}
    assert data["evaluate"] == {"n_test": 100}
    assert data["readout"]["lambdas"] == [1e-3, 1.0]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("readout.lambdas[2]", "readout.lambdas has no element [2] in the spec"),
        ("readout.lambdas[5].x", "readout.lambdas has 2 element(s) in the spec, no [5]"),
        ("readout.lambdas.x", "readout.lambdas is not a mapping"),
        ("readout.lambdas.x.y", "readout.lambdas is not a mapping"),
    ],
)
def test_create_mode_names_the_path_it_cannot_set(key, message):
    data = copy.deepcopy(SPEC)
    with pytest.raises(ValueError, match=re.escape(message)):
        set_path(data, parse_key(key), 1, create=True)


def test_strict_mode_sets_only_along_existing_keys_and_copies():
    data = copy.deepcopy(SPEC)
    value = [1, 2]
    set_path(data, parse_key("readout.lambdas"), value)
    value.append(3)
    assert data["readout"]["lambdas"] == [1, 2]  # a deep copy, not the caller's list
    with pytest.raises(KeyError):
        set_path(data, parse_key("evaluate.n_test"), 100)
    with pytest.raises(TypeError):  # no shorthand expansion: 'relu' is a str
        set_path(data, parse_key("student.activation.scale"), 2.0)
    with pytest.raises(IndexError):
        set_path(data, parse_key("readout.lambdas[5].x"), 1)


def test_recipe_override_keeps_sweep_keys_whole():
    data = copy.deepcopy(SPEC)
    set_dotted(data, "sweep/train.n", [10, 20])
    set_dotted(data, "train.n", 64)
    assert data["sweep"] == {"train.n": [10, 20]} and data["train"]["n"] == 64
