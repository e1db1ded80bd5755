"""Recipe mean-field-langevin: the spec's zip encodes mean-field Langevin (wd = lambda/N,
T = tau/N, init at the prior N(0, tau/lambda) on every coordinate), and the quick mode
(d in {8, 32, 128}, N in {4, 16, 64} at n = 200, n in {50, 200, 800} at N = 64, 200 steps,
4 seeds) passes every claim. The finite-size terms were measured on the calibration seeds
200-203; the test runs the recipe's own seeds 0-3, not used for that."""

import math

import pytest
from recipe_checks import check_calibrated_quantities_are_the_claims, check_quick_mode

from twolayer.recipes import RECIPES

LAMBDA, TAU = 1e-2, 1e-3


@pytest.mark.parametrize("quick", [False, True])
def test_zip_is_mean_field_langevin_with_one_lambda_and_tau(quick):
    """Every zip row: wd_W = wd_a = lambda / N, T = tau / N, w_scale^2 / d = tau / lambda
    (entries N(0, tau/lambda)), a_scale^2 = tau / lambda; eta = dt N. Rel. 1e-8 (10 digits)."""
    spec = RECIPES.get("mean-field-langevin").spec(quick=quick)
    z = spec["zip"]
    assert spec["train"]["eta"] == {"c": 0.5, "alpha": 1, "S": "N"}
    assert spec["student"]["scaling"] == "mean_field"
    assert math.isclose(spec["student"]["a_scale"] ** 2, TAU / LAMBDA, rel_tol=1e-8)
    for i, N in enumerate(z["student.N"]):
        d = z["teacher.d"][i]
        assert math.isclose(z["train.weight_decay.W"][i], LAMBDA / N, rel_tol=1e-8)
        assert math.isclose(z["train.weight_decay.a"][i], LAMBDA / N, rel_tol=1e-8)
        assert math.isclose(z["train.temperature"][i], TAU / N, rel_tol=1e-8)
        assert math.isclose(z["student.w_scale"][i] ** 2 / d, TAU / LAMBDA, rel_tol=1e-8)


@pytest.mark.slow
def test_mean_field_langevin_quick(tmp_path):
    result = check_quick_mode("mean-field-langevin", tmp_path, figures=2)
    assert all(c.source and c.derivation for c in result.claims)
    # tau (d_max - d_min) / 2 = 1e-3 x (128 - 8) / 2 at the quick zip's temperature x N
    check_calibrated_quantities_are_the_claims(result, "mean-field-langevin", {
        "drift": ("plateau-reached", 0.0), "offset": ("raw-plateau-offset", 0.06),
        "plateau-d8": ("truncation-plateau-d8", 0.0), "excess-d32": ("truncation-excess-d32", 0.0),
        "one-over-N": ("test-error-one-over-N", 0.0)})
