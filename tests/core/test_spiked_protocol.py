"""The ``spiked`` protocol (spiked random features, Cui et al. 2024): the built first layer is
exactly c_W W_0 + r 1 v^T with a unit v at overlap gamma with the target; r = 0, c_W = 1 gives
W_0 back; the derivation from (eta_tilde, alpha0) follows the closed formulas; the engine's
giant step in Cui et al.'s convention has the predicted spike; config errors are clear."""

import math

import numpy as np
import pytest
from pydantic import ValidationError

from twolayer import RunConfig, run_once
from twolayer.activations import get_activation
from twolayer.backend import RunStreams
from twolayer.student import init_student
from twolayer.teachers import get_teacher
from twolayer.theory.spiked_rf import SpikedRFParameters, spiked_rf_parameters_for
from twolayer.train.spiked import SpikedOptions, spike_direction, spiked_features


def _setup(d=60, N=80, seed=0, link="tanh", activation="tanh", noise=0.0):
    streams = RunStreams(seed)
    teacher = get_teacher("single_index", d=d, rng=streams.generator("teacher"), link=link,
                          noise=noise)
    student = init_student(N, d, get_activation(activation), streams.generator("init"),
                           w_init="sphere", a_init="constant", a_scale=1 / math.sqrt(N))
    return streams, teacher, student


def _spec(train, d=40, N=50, **extra):
    return {
        "teacher": {"name": "single_index", "d": d, "link": "tanh"},
        "student": {"N": N, "activation": "tanh", "w_init": "sphere", "a_init": "constant",
                    "a_scale": 1 / math.sqrt(N)},
        "train": {"protocol": "spiked", **train},
        "readout": {"n": 80, "lambdas": [0.1], "penalty": "sum"},
        "evaluate": {"n_test": 500, "train_errors": False},
        **extra,
    }


@pytest.mark.parametrize("gamma", [0.0, 0.35, -0.8, 1.0])
def test_built_W_is_c_W0_plus_rank_one_spike(gamma):
    streams, teacher, student = _setup()
    params = SpikedRFParameters(r=1.7, c_w=1.3, gamma=gamma)
    res = spiked_features(student, teacher, streams, SpikedOptions(params))
    W0, W = np.asarray(student.W), np.asarray(res.student.W)
    spike = W - 1.3 * W0
    # every row carries the same vector r v: the difference is exactly rank one
    np.testing.assert_allclose(spike, np.broadcast_to(spike[0], spike.shape), atol=1e-14)
    v = spike[0] / 1.7
    assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-12)
    assert v @ teacher.beta == pytest.approx(gamma, abs=1e-12)
    assert np.linalg.svd(spike, compute_uv=False)[1] < 1e-12
    np.testing.assert_array_equal(np.asarray(res.student.a), np.asarray(student.a))
    row = res.trajectory[0]
    assert (row["r"], row["c_w"], row["gamma"]) == (1.7, 1.3, gamma)
    assert row["overlap"] == pytest.approx(gamma, abs=1e-12)


def test_zero_spike_and_unit_scale_give_W0_back():
    streams, teacher, student = _setup()
    options = SpikedOptions(SpikedRFParameters(0.0, 1.0, 0.5))
    res = spiked_features(student, teacher, streams, options)
    np.testing.assert_array_equal(np.asarray(res.student.W), np.asarray(student.W))


def test_orthogonal_part_is_a_fresh_random_direction():
    # u comes from the stream "spike": the same seed gives the same v, another seed another one,
    # and its part orthogonal to beta is spread out (no coordinate bias): |<u, e_1>| ~ d^-1/2
    d = 400
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    beta = np.zeros(d)
    beta[0] = 1.0
    v1, v2 = spike_direction(beta, 0.6, d, rng_a), spike_direction(beta, 0.6, d, rng_b)
    np.testing.assert_array_equal(v1, v2)
    v3 = spike_direction(beta, 0.6, d, np.random.default_rng(2))
    assert abs((v1 - 0.6 * beta) @ (v3 - 0.6 * beta)) / 0.64 < 4 / math.sqrt(d)
    assert v1[0] == pytest.approx(0.6, abs=1e-12)
    with pytest.raises(ValueError, match="one target direction"):
        spike_direction(None, 0.5, d, np.random.default_rng(0))


def _simulated_step(act, g, noise, alpha0, eta_tilde, *, d=500, draws=4, seed=0):
    """Monte Carlo oracle for the sRF parameters: the first step's update per unit eta_tilde in
    Cui et al.'s convention, U = (1/n0) sum_a y_a sigma'(W_0 x_a) x_a^T (unit rows, N = d,
    n0 = alpha0 d, f = 0 at init as the derivation assumes), drawn. Returns per draw the squared
    norm of its mean row (r^2 / eta^2), the cosine of the mean row with beta (gamma) and, for
    W_1 = W_0 + eta_tilde U, the mean squared norm of W_1's centred rows (c_W^2)."""
    rng = np.random.default_rng(seed)
    n0 = int(alpha0 * d)
    out = []
    for _ in range(draws):
        beta = rng.standard_normal(d)
        beta /= np.linalg.norm(beta)
        W0 = rng.standard_normal((d, d))
        W0 /= np.linalg.norm(W0, axis=1, keepdims=True)
        X = rng.standard_normal((n0, d))
        y = g(X @ beta) + noise * rng.standard_normal(n0)
        U = (act.derivative(X @ W0.T) * y[:, None]).T @ X / n0
        mean = U.mean(axis=0)
        W1 = W0 + eta_tilde * U
        centred = W1 - W1.mean(axis=0)
        out.append((mean @ mean, mean @ beta / np.linalg.norm(mean),
                    float(np.mean(np.sum(centred**2, axis=1)))))
    return np.asarray(out)


@pytest.mark.parametrize(
    ("activation", "link", "noise"),
    [("tanh", "tanh", 0.0), ("relu", "tanh", 0.0), ("erf", "relu", 0.3), ("gelu", "sigmoid", 0.0)],
)
@pytest.mark.parametrize(("eta_tilde", "alpha0"), [(0.0, 1.0), (1.5, 2.0), (4.0, 0.5)])
def test_derivation_follows_the_closed_formulas(activation, link, noise, eta_tilde, alpha0):
    # The derived (r, c_W, gamma) against a drawn first step (not the formulas re-typed):
    # r = eta_tilde ||mean row of U||, gamma = its cosine with beta, c_W^2 = the mean squared
    # norm of the centred rows of the drawn W_1 = W_0 + eta_tilde U (:func:`_simulated_step`,
    # d = N = 500, 4 draws). Tolerance: 3 standard errors of the draws + the O(1/sqrt(d))
    # finite-size terms of the limit (a mean row over N rows of sigma'(<w_i, x>) carries ~ 1/N
    # of its squared norm per unit, and the centred rows a beta part of relative size ~ 1/d):
    # 2% on r^2, 0.02 on gamma, 3% on c_W^2 - 1. The gelu student with the sigmoid target is the
    # case with E[y] E[sigma''] != 0, where each row also moves along itself.
    act, g = get_activation(activation), get_activation(link)
    ours = spiked_rf_parameters_for(eta_tilde, alpha0, act, g, noise)
    sim = _simulated_step(act, g, noise, alpha0, eta_tilde)
    mean, se = sim.mean(axis=0), sim.std(axis=0, ddof=1) / math.sqrt(len(sim))
    if eta_tilde == 0.0:
        assert (ours.r, ours.c_w) == (0.0, 1.0)
    else:
        r2 = (ours.r / eta_tilde) ** 2
        assert abs(r2 - mean[0]) <= 3 * se[0] + 0.02 * r2
        excess = ours.c_w**2 - 1.0
        assert abs(ours.c_w**2 - mean[2]) <= 3 * se[2] + 0.03 * abs(excess)
    assert abs(ours.gamma - mean[1]) <= 3 * se[1] + 0.02


def test_run_derives_parameters_from_the_teacher_and_the_student():
    result = run_once(RunConfig.model_validate(_spec({"eta_tilde": 2.0, "alpha0": 1.5})), 3)
    expected = spiked_rf_parameters_for(2.0, 1.5, get_activation("tanh"), get_activation("tanh"))
    assert result.scalars["train.final_r"] == pytest.approx(expected.r, abs=1e-12)
    assert result.scalars["train.final_c_w"] == pytest.approx(expected.c_w, abs=1e-12)
    assert result.scalars["train.final_overlap"] == pytest.approx(expected.gamma, abs=1e-12)
    W, W0 = np.asarray(result.student.W), np.asarray(result.student_init.W)
    spike = W - expected.c_w * W0
    np.testing.assert_allclose(spike, np.broadcast_to(spike[0], spike.shape), atol=1e-13)
    assert np.linalg.norm(spike[0]) == pytest.approx(expected.r, abs=1e-12)
    # same seed and sections: same numbers; the readout size does not change the spike
    again = run_once(RunConfig.model_validate(
        _spec({"eta_tilde": 2.0, "alpha0": 1.5}, readout={"n": 120, "lambdas": [1.0],
                                                          "penalty": "sum"})), 3)
    np.testing.assert_array_equal(np.asarray(again.student.W), W)
    assert np.isfinite(result.scalars["readout.test_mse"])


def test_engine_giant_step_in_cui_convention_has_the_predicted_spike():
    # One giant step through the engine in Cui et al.'s convention: unit rows, a = 1/sqrt(N)
    # constant, scale 1/sqrt(N), square loss (f - y)^2 / 2 averaged, eta = eta_tilde * N.
    # Then W_1 - W_0 = eta_tilde (1/n0) sum (y - f) sigma'(W_0 x) x^T, whose mean row is r v and
    # whose centred rows have mean squared norm c_W^2 - 1 (d = N = 400, n0 = 2d, tanh/tanh, one
    # seed). As in tests/theory/test_theory_spiked_rf.py (4 seeds at d = 500: r within 3%, gamma
    # within 0.01): tolerances 6% (r), 0.04 (gamma), 12% (c_W^2 - 1) for the smaller d.
    d = N = 400
    eta, alpha0 = 2.0, 2.0
    spec = _spec({}, d=d, N=N)
    spec["train"] = {"protocol": "giant_steps", "n": int(alpha0 * d),
                     "steps": [{"eta": {"c": eta, "alpha": 1.0, "S": "N"}}]}
    spec["readout"] = None
    result = run_once(RunConfig.model_validate(spec), 0)
    update = np.asarray(result.student.W) - np.asarray(result.student_init.W)
    mean = update.mean(axis=0)
    pred = spiked_rf_parameters_for(eta, alpha0, get_activation("tanh"), get_activation("tanh"))
    assert np.linalg.norm(mean) / pred.r == pytest.approx(1.0, abs=0.06)
    assert mean @ result.teacher.beta / np.linalg.norm(mean) == pytest.approx(pred.gamma, abs=0.04)
    spread = np.mean(np.sum((update - mean) ** 2, axis=1))
    assert spread / (pred.c_w**2 - 1) == pytest.approx(1.0, abs=0.12)


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"r": 1.0, "eta_tilde": 1.0}, "not both"),
        ({}, "give r, c_w and gamma"),
        ({"r": 1.0, "gamma": 0.5}, "also give c_w"),
        ({"eta_tilde": 1.0}, "also give alpha0"),
        ({"r": 1.0, "c_w": 1.0, "gamma": 1.5}, "less than or equal to 1"),
        ({"r": 1.0, "c_w": 0.0, "gamma": 0.5}, "greater than 0"),
        ({"r": float("inf"), "c_w": 1.0, "gamma": 0.5}, "finite"),
    ],
)
def test_config_errors_are_clear(train, message):
    with pytest.raises(ValidationError, match=message):
        RunConfig.model_validate(_spec(train))


def test_readout_needs_its_own_batch():
    spec = _spec({"r": 1.0, "c_w": 1.0, "gamma": 0.5})
    spec["readout"] = {"lambdas": [0.1]}
    with pytest.raises(ValidationError, match=r"readout\.n"):
        RunConfig.model_validate(spec)


def test_derivation_needs_a_single_index_teacher():
    spec = _spec({"eta_tilde": 1.0, "alpha0": 1.0})
    spec["teacher"] = {"name": "multi_index", "d": 40, "k": 2}
    with pytest.raises(ValueError, match="single-index teacher"):
        run_once(RunConfig.model_validate(spec), 0)


@pytest.mark.torch
def test_torch_backend_builds_the_same_model():
    # v is drawn by NumPy and moved to the backend, so float64 torch gives the numbers of NumPy
    pytest.importorskip("torch")
    spec = _spec({"r": 1.2, "c_w": 1.1, "gamma": 0.7})
    a = run_once(RunConfig.model_validate(spec), 0)
    b = run_once(RunConfig.model_validate({**spec, "backend": {"name": "torch",
                                                               "dtype": "float64"}}), 0)
    np.testing.assert_allclose(b.student.W.cpu().numpy(), np.asarray(a.student.W), rtol=1e-12)
    assert b.scalars["readout.test_mse"] == pytest.approx(a.scalars["readout.test_mse"], rel=1e-9)
