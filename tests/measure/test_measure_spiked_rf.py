"""Measurement spiked_rf_theory: inside a run it computes exactly the theory module's prediction
for the run's own W_0, spike direction and target (checked by a direct call on the same arrays),
converts a mean penalty to the sum convention, derives (r, c_W, gamma) like the protocol, and
refuses the settings the equations do not cover. Agreement with simulation is the theory's
tests' and the spiked-random-features recipe's business."""

import math

import numpy as np
import pytest

from twolayer import RunConfig, run_once
from twolayer.activations import get_activation
from twolayer.theory.spiked_rf import (
    SpikedRFParameters,
    spiked_rf_error,
    spiked_rf_parameters_for,
    spiked_rf_spectrum,
)

D = N = 80
N_READOUT = 160


def _spec(train, *, lambdas=(0.1, 1.0), penalty="sum", **student):
    return {
        "teacher": {"name": "single_index", "d": D, "link": "tanh"},
        "student": {"N": N, "activation": "tanh", "w_init": "sphere", "a_init": "constant",
                    "a_scale": 1 / math.sqrt(N), **student},
        "train": {"protocol": "spiked", **train},
        "readout": {"n": N_READOUT, "lambdas": list(lambdas), "penalty": penalty},
        "evaluate": {"n_test": 200, "train_errors": False},
        "measure": [{"name": "spiked_rf_theory", "random_features": True}],
    }


def _direct(result, params, lams):
    W0 = np.asarray(result.student_init.W)
    spike = np.asarray(result.student.W) - params.c_w * W0
    v = spike[0] / np.linalg.norm(spike[0])
    beta = result.teacher.beta
    act = get_activation("tanh")
    out = []
    for c_w, model in ((params.c_w, params), (1.0, SpikedRFParameters(0.0, 1.0, params.gamma))):
        spectrum = spiked_rf_spectrum(W0, v, beta, c_w)
        out.append([spiked_rf_error(spectrum, model, N_READOUT, lam, act.fn, act.fn,
                                    tol=1e-8).test_error for lam in lams])
    return np.array(out)


def test_equals_the_theory_for_the_runs_own_W0_and_spike():
    params = SpikedRFParameters(0.7, 1.1, 0.6)
    result = run_once(RunConfig.model_validate(_spec({"r": 0.7, "c_w": 1.1, "gamma": 0.6})), 2)
    srf, rf = _direct(result, params, (0.1, 1.0))
    np.testing.assert_allclose(result.arrays["spiked_rf_theory.test_mse_path"], srf, rtol=1e-6)
    np.testing.assert_allclose(result.arrays["spiked_rf_theory.rf_test_mse_path"], rf, rtol=1e-6)
    assert result.scalars["spiked_rf_theory.test_mse"] == pytest.approx(srf.min(), rel=1e-6)
    assert result.scalars["spiked_rf_theory.rf_test_mse"] == pytest.approx(rf.min(), rel=1e-6)
    assert result.scalars["spiked_rf_theory.converged"] == 1.0
    assert srf.min() < rf.min()  # the spike along the target helps at this size already


def test_mean_penalty_is_the_sum_penalty_over_n():
    train = {"r": 0.7, "c_w": 1.1, "gamma": 0.6}
    by_sum = run_once(RunConfig.model_validate(_spec(train, lambdas=[0.1])), 0)
    by_mean = run_once(RunConfig.model_validate(
        _spec(train, lambdas=[0.1 / N_READOUT], penalty="mean")), 0)
    assert by_mean.scalars["spiked_rf_theory.test_mse"] == pytest.approx(
        by_sum.scalars["spiked_rf_theory.test_mse"], rel=1e-9)
    assert by_mean.scalars["readout.test_mse"] == pytest.approx(
        by_sum.scalars["readout.test_mse"], rel=1e-9)


def test_derived_parameters_are_the_protocols():
    result = run_once(RunConfig.model_validate(
        _spec({"eta_tilde": 1.5, "alpha0": 2.0}, lambdas=[0.1])), 1)
    expected = spiked_rf_parameters_for(1.5, 2.0, get_activation("tanh"), get_activation("tanh"))
    assert result.scalars["spiked_rf_theory.r"] == pytest.approx(expected.r, abs=1e-12)
    assert result.scalars["spiked_rf_theory.c_w"] == pytest.approx(expected.c_w, abs=1e-12)
    assert result.scalars["spiked_rf_theory.gamma"] == pytest.approx(expected.gamma, abs=1e-12)
    srf = _direct(result, expected, (0.1,))[0, 0]
    assert result.scalars["spiked_rf_theory.test_mse"] == pytest.approx(srf, rel=1e-6)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"student": {"w_init": "gaussian"}}, "unit rows"),
        ({"teacher": {"noise": 0.1}}, "label noise"),
        ({"train": {"protocol": "gd", "n": 50, "steps": 1}}, "'spiked' or 'none'"),
        # gamma = 0: the protocol accepts a teacher with two directions, the equations do not
        ({"teacher": {"name": "multi_index", "k": 2, "link": "sum"},
          "train": {"protocol": "spiked", "r": 0.5, "c_w": 1.0, "gamma": 0.0}}, "single-index"),
    ],
)
def test_refuses_what_the_equations_do_not_cover(change, message):
    spec = _spec({"r": 0.5, "c_w": 1.0, "gamma": 0.5}, lambdas=[0.1])
    for section, values in change.items():
        spec[section] = (values if section == "train" else {**spec[section], **values})
    with pytest.raises(ValueError, match=message):  # when the configuration is validated
        RunConfig.model_validate(spec)


def test_plain_random_features_run():
    # train.protocol none: the prediction at r = 0, c_W = 1, for the run's W_0
    spec = _spec({}, lambdas=[0.1])
    spec["train"] = {"protocol": "none"}
    result = run_once(RunConfig.model_validate(spec), 0)
    assert result.scalars["spiked_rf_theory.r"] == 0.0
    assert result.scalars["spiked_rf_theory.test_mse"] == pytest.approx(
        result.scalars["spiked_rf_theory.rf_test_mse"], rel=1e-9)
