"""Measurement ridge_theory: inside a run it is exactly the theory module's Gaussian-equivalence
prediction for the run's own W and readout (lambda conventions mapped), it matches simulated
random-features ridge at moderate size, and it refuses what it does not cover when the spec
loads."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twolayer import RunConfig, run_once
from twolayer.theory.ridge import penalty_sum_to_mean, rf_ridge_prediction_for


def _config(train=None, *, d=60, N=120, n=180, scaling="standard", penalty="mean",
            lambdas=(1e-3, 1e-1), readout=None, teacher=None, n_test=2000) -> RunConfig:
    return RunConfig.model_validate({
        "teacher": teacher or {"name": "single_index", "d": d, "link": "tanh", "noise": 0.1},
        "student": {"N": N, "activation": "relu", "a_scale": 1 / math.sqrt(N),
                    "scaling": scaling},
        "train": train or {"protocol": "none"},
        "readout": readout or {"n": n, "lambdas": list(lambdas), "penalty": penalty,
                               "baselines": ["random_features"]},
        "evaluate": {"n_test": n_test, "train_errors": False},
        "measure": [{"name": "ridge_theory", "random_features": True}],
    })


@pytest.mark.parametrize(
    ("scaling", "penalty", "lambdas"),
    [("standard", "mean", (1e-3, 1e-1)), ("mean_field", "mean", (1e-4, 1e-2)),
     ("standard", "sum", (0.5, 5.0))],
)
def test_equals_the_theory_for_the_runs_own_w_and_readout(scaling, penalty, lambdas):
    # Exact (to rounding): the readout fits scale * sigma(X W^T) = c phi with c = scale sqrt(N),
    # so its penalty lam is lam / c^2 on phi (and a sum penalty is lam / n on the mean).
    step = {"protocol": "giant_steps", "n": 180, "steps": [{"eta": {"c": 2.0, "S": "N",
                                                                    "alpha": 0.5}}]}
    cfg = _config(step, scaling=scaling, penalty=penalty, lambdas=lambdas)
    result = run_once(cfg, seed=3)
    N, n = 120, 180
    c2 = (result.student.scale * math.sqrt(N)) ** 2
    lams = np.asarray(lambdas)
    lams = (penalty_sum_to_mean(lams, n) if penalty == "sum" else lams) / c2
    beta = result.teacher.directions[0]
    for W, key in ((result.student.W, "test_mse_path"), (result.student_init.W,
                                                        "rf_test_mse_path")):
        preds = rf_ridge_prediction_for(W, beta, n, list(lams), "relu", "tanh", noise_var=0.01)
        np.testing.assert_allclose(result.arrays[f"ridge_theory.{key}"],
                                   [p.test_error for p in preds], rtol=1e-10)
    path = result.arrays["ridge_theory.test_mse_path"]
    assert result.scalars["ridge_theory.test_mse"] == pytest.approx(path.min(), rel=1e-12)
    assert result.scalars["ridge_theory.best_lambda"] == lambdas[int(np.argmin(path))]


@pytest.mark.slow
def test_matches_simulated_random_features_ridge():
    # Theory oracle: random features (nothing trained, Gaussian W_0: rows of norm 1 +- 0.04) at
    # d = 300, N = 600, n = 900, relu features, tanh target, noise 0.1, 4 seeds, n_test = 20000.
    # Measured per seed, (readout - theory) / theory is +2% +- 3% at this size (readout batch
    # fluctuation; -0.4% +- 2% at twice the size): the mean over 4 seeds within 8%. A wrong
    # penalty mapping or missing mean direction is off by 30% or more.
    rel = []
    for seed in range(4):
        s = run_once(_config(d=300, N=600, n=900, lambdas=(1e-4, 1e-3, 1e-2, 1e-1),
                             n_test=20_000), seed).scalars
        rel.append(s["readout.test_mse"] / s["ridge_theory.test_mse"] - 1)
        # the baseline is the same W_0 when nothing is trained
        assert s["ridge_theory.rf_test_mse"] == pytest.approx(s["ridge_theory.test_mse"])
    assert abs(np.mean(rel)) < 0.08, rel


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"readout": {"batch": "reuse", "lambdas": [1e-3]},
          "train": {"protocol": "giant_steps", "n": 50}}, "readout.batch 'fresh'"),
        ({"readout": None}, "needs a readout"),
        ({"teacher": {"name": "multi_index", "d": 60, "k": 2, "link": "sum"}},
         "single-index teacher"),
    ],
)
def test_refuses_what_it_does_not_cover_when_the_spec_loads(change, message):
    spec = _config().model_dump()
    spec.update(change)
    with pytest.raises(ValueError, match=message):
        RunConfig.model_validate(spec)
