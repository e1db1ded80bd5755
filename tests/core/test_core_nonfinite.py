"""NaN and infinity are refused when a spec loads; a run whose parameters overflow float64 is
stored as diverged, not as done with NaN results (issue: reliability, non-finite numbers)."""

import pytest

from twolayer import RunConfig, run_once
from twolayer.experiment import SpecError, load_spec, run_spec
from twolayer.train import DivergenceError

BASE = {
    "name": "nonfinite",
    "teacher": {"name": "single_index", "d": 20, "link": "tanh"},
    "student": {"N": 20},
    "train": {"protocol": "giant_steps", "n": 40},
    "readout": {"n": 40},
    "evaluate": {"n_test": 200},
}


@pytest.mark.parametrize(
    "key, value, where",
    [
        ("teacher", {"name": "single_index", "d": 20, "noise": float("nan")}, "noise"),
        ("teacher", {"name": "single_index", "d": 20,
                     "link": {"name": "hermite_poly", "coefficients": [0.0, float("inf")]}},
         r"link\.coefficients\[1\]"),
        ("train", {"protocol": "giant_steps", "n": 40, "steps": [{"eta": {"c": float("inf")}}]},
         "finite"),
        ("readout", {"n": 40, "lambdas": [float("nan")]}, "finite"),
    ],
)
def test_non_finite_numbers_are_spec_errors(key, value, where):
    with pytest.raises(SpecError, match=where):
        load_spec({**BASE, key: value})


def test_yaml_nan_is_a_spec_error():
    text = "\n".join(
        ["name: x", "teacher: {name: single_index, d: 5, noise: .nan}", "student: {N: 4}"]
    ) + "\n"
    with pytest.raises(SpecError, match="noise"):
        load_spec(text)


def test_a_step_that_overflows_is_diverged_not_done(tmp_path):
    huge = {**BASE, "train": {"protocol": "giant_steps", "n": 40,
                              "steps": [{"eta": {"c": 1e300}}]}}
    with pytest.raises(DivergenceError, match="step 0"):
        run_once(RunConfig.model_validate({k: v for k, v in huge.items() if k != "name"}), 0)
    result = run_spec(huge, store=tmp_path / "s.sqlite", executor="serial")
    assert result.counts() == {"diverged": 1}
