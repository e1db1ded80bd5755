"""Property tests: random valid specs round-trip through YAML with the same run identities;
random corruptions of a valid spec either load or raise SpecError, never anything else."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twolayer.experiment import SpecError, load_spec_with_runs

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)

teachers = st.one_of(
    st.fixed_dictionaries(
        {
            "name": st.just("single_index"),
            "d": st.integers(2, 12),
            "link": st.sampled_from(["tanh", "relu", "erf", "linear"]),
            "noise": st.floats(0.0, 1.0),
        }
    ),
    st.fixed_dictionaries(
        {"name": st.just("xor"), "d": st.integers(3, 12), "label_noise": st.floats(0.0, 0.49)}
    ),
)
students = st.fixed_dictionaries(
    {"N": st.integers(1, 32)},
    optional={
        "activation": st.sampled_from(["relu", "tanh", "erf", "softplus"]),
        "scaling": st.sampled_from(["standard", "mean_field"]),
        "w_scale": st.floats(0.01, 10.0),
        "a_init": st.sampled_from(["gaussian", "pm1", "balanced", "constant"]),
    },
)
etas = st.one_of(
    st.floats(-10.0, 10.0),
    st.fixed_dictionaries(
        {"c": st.floats(-10.0, 10.0), "alpha": st.floats(-1.0, 1.0)},
        optional={"S": st.sampled_from(["n", "N", "d", "1"])},
    ),
)
trains = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "protocol": st.just("giant_steps"),
            "n": st.integers(1, 64),
            "steps": st.lists(st.fixed_dictionaries({"eta": etas}), min_size=1, max_size=3),
        }
    ),
    st.fixed_dictionaries(
        {"protocol": st.just("gd"), "n": st.integers(1, 64), "steps": st.integers(0, 20)},
        optional={"eta": etas, "batch_size": st.integers(1, 16), "online": st.booleans()},
    ),
)
readouts = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {"n": st.integers(1, 64), "lambdas": st.lists(st.floats(0.0, 1e3), min_size=1, max_size=4)},
        optional={
            "baselines": st.lists(st.sampled_from(["random_features", "linear"]), max_size=2)
        },
    ),
)
seeds = st.one_of(
    st.integers(1, 3), st.lists(st.integers(0, 10**6), min_size=1, max_size=3, unique=True)
)
sweeps = st.one_of(
    st.just({}),
    st.fixed_dictionaries({"student.N": st.lists(st.integers(1, 16), min_size=1, max_size=3)}),
    st.fixed_dictionaries(
        {"evaluate.n_test": st.lists(st.integers(1, 500), min_size=1, max_size=2)},
        optional={"teacher.d": st.lists(st.integers(3, 10), min_size=1, max_size=2)},
    ),
)


@st.composite
def valid_specs(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": draw(st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)),
        "seeds": draw(seeds),
        "teacher": draw(teachers),
        "student": draw(students),
        "evaluate": {"n_test": draw(st.integers(1, 1000))},
        "sweep": draw(sweeps),
    }
    train = draw(trains)
    if train is not None:
        spec["train"] = train
    readout = draw(readouts)
    if readout is not None:
        spec["readout"] = readout
    if draw(st.booleans()):
        spec["executor"] = {"kind": draw(st.sampled_from(["serial", "local"])), "jobs": 2}
    return spec


junk = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-5, 100),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=6),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
known_keys = st.sampled_from(
    [
        "name",
        "d",
        "N",
        "n",
        "link",
        "noise",
        "label_noise",
        "steps",
        "eta",
        "alpha",
        "c",
        "S",
        "lambdas",
        "protocol",
        "activation",
        "seeds",
        "sweep",
        "zip",
        "executor",
        "kind",
        "input_spike",
        "student.N",
        "train.steps[0].eta.c",
        "teacher.d",
        "batch",
        "measure",
        "backend",
    ]
)


def _containers(data: Any, path: tuple = ()) -> list[tuple]:
    out = [path] if isinstance(data, dict | list) else []
    if isinstance(data, dict):
        for k, v in data.items():
            out += _containers(v, (*path, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _containers(v, (*path, i))
    return out


@st.composite
def corrupted_specs(draw: st.DrawFn) -> dict[str, Any]:
    spec = copy.deepcopy(draw(valid_specs()))
    for _ in range(draw(st.integers(1, 3))):
        paths = _containers(spec)
        path = draw(st.sampled_from(paths))
        target: Any = spec
        for part in path:
            target = target[part]
        action = draw(st.sampled_from(["set", "delete", "replace"]))
        if isinstance(target, dict):
            if action == "delete" and target:
                target.pop(draw(st.sampled_from(sorted(target, key=str))))
            else:
                key = draw(st.one_of(known_keys, st.text(max_size=6)))
                target[key] = draw(junk)
        elif target:
            target[draw(st.integers(0, len(target) - 1))] = draw(junk)
    return spec


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs())
def test_valid_specs_round_trip(spec):
    loaded, runs = load_spec_with_runs(spec)
    again, runs_again = load_spec_with_runs(loaded.to_yaml() + "\n")
    assert again == loaded
    assert [r.id for r in runs_again] == [r.id for r in runs]
    n_points = len(loaded.points())
    assert len(runs) == n_points * len(loaded.seed_list)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corrupted_specs())
def test_invalid_specs_raise_only_spec_error(spec):
    try:
        load_spec_with_runs(spec)
    except SpecError as exc:
        assert str(exc).startswith("<dict>: ")
        assert exc.problems
