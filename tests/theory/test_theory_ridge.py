"""Ridge deterministic equivalent: exact checks, Gaussian simulation, and random-features ridge."""

import math

import numpy as np
import pytest

from twolayer.activations import get_activation
from twolayer.theory.ridge import (
    penalty_mean_to_sum,
    penalty_sum_to_mean,
    rf_ridge_prediction,
    rf_ridge_prediction_for,
    ridge_deterministic_equivalent,
    ridge_deterministic_equivalent_from_covariance,
)


def test_penalty_conversion_gives_the_same_estimator():
    # Exact: sum-loss ridge with lam_sum and mean-loss ridge with lam_sum / n coincide.
    rng = np.random.default_rng(3)
    n, p, lam_sum = 40, 15, 2.0
    X, y = rng.standard_normal((n, p)), rng.standard_normal(n)
    a_sum = np.linalg.solve(X.T @ X + lam_sum * np.eye(p), X.T @ y)
    lam = penalty_sum_to_mean(lam_sum, n)
    a_mean = np.linalg.solve(X.T @ X / n + lam * np.eye(p), X.T @ y / n)
    np.testing.assert_allclose(a_sum, a_mean, rtol=1e-12)
    assert penalty_mean_to_sum(lam, n) == pytest.approx(lam_sum)


def test_limits_of_the_deterministic_equivalent():
    # Exact limits. (i) Isotropic Sigma = I_p, p < n, lam = 0: least squares, excess risk
    # s^2 p / (n - p). (ii) lam -> infinity: a_hat -> 0, excess risk -> theta^T Sigma theta.
    # (iii) lam = 0, p = n: the interpolation peak, variance infinite.
    p, n, s2 = 50, 200, 0.3
    ev, coef = np.ones(p), np.full(p, 0.1)
    pred = ridge_deterministic_equivalent(ev, coef, n, 0.0, s2)
    assert pred.kappa == 0.0
    assert pred.excess_risk == pytest.approx(s2 * p / (n - p), rel=1e-12)
    big = ridge_deterministic_equivalent(ev, coef, n, 1e8, s2)
    assert big.excess_risk == pytest.approx(np.sum(ev * coef**2), rel=1e-6)
    peak = ridge_deterministic_equivalent(ev, coef, p, 0.0, s2)
    assert math.isinf(peak.variance)


def test_gaussian_ridge_against_simulation():
    # Gaussian features phi ~ N(0, Sigma), p = 600, n = 400, Sigma with 200 eigenvalues 1 and 400
    # eigenvalues 1/4, theta random (seed 99) normalised to ||Sigma^1/2 theta|| = 1, noise 0.25;
    # 6 seeds. Excess risk computed exactly from the estimate: (a - theta)^T Sigma (a - theta).
    # Measured seed-to-seed relative std at this size: ~8% (the risk is a quadratic form with
    # O(n^-1/2) fluctuations); standard error of the 6-seed mean ~3.3%; tolerance 10% (3 SE),
    # for lam in {1e-1, 1e-2, 1e-3, 1e-5} (the last one near the min-norm interpolator).
    p, n, s2 = 600, 400, 0.25
    ev = np.where(np.arange(p) < 200, 1.0, 0.25)
    theta = np.random.default_rng(99).standard_normal(p)
    theta /= math.sqrt(np.sum(ev * theta**2))
    lams = [1e-1, 1e-2, 1e-3, 1e-5]
    n_seeds = 6
    sims = np.zeros(len(lams))
    for seed in range(n_seeds):
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((n, p)) * np.sqrt(ev)
        y = X @ theta + math.sqrt(s2) * rng.standard_normal(n)
        gram_ev, gram_vec = np.linalg.eigh(X.T @ X)
        proj = gram_vec.T @ (X.T @ y)
        for i, lam in enumerate(lams):
            a = gram_vec @ (proj / (gram_ev + n * lam))
            sims[i] += np.sum(ev * (a - theta) ** 2) / n_seeds
    for lam, sim in zip(lams, sims, strict=True):
        pred = ridge_deterministic_equivalent(ev, theta, n, lam, s2)
        assert abs(pred.excess_risk / sim - 1) < 0.10, (lam, pred.excess_risk, sim)
        assert pred.test_error == pytest.approx(pred.excess_risk + s2)
    # the covariance-matrix entry point gives the same numbers (two paths)
    dense = ridge_deterministic_equivalent_from_covariance(np.diag(ev), theta, n, lams, s2)
    for lam, other in zip(lams, dense, strict=True):
        assert other.excess_risk == pytest.approx(
            ridge_deterministic_equivalent(ev, theta, n, lam, s2).excess_risk, rel=1e-9)


@pytest.mark.slow
def test_random_features_ridge_against_simulation():
    # Random features phi = relu(W x)/sqrt(N), W (N, d) with unit rows, d = N = n = 1000,
    # link tanh, label noise variance 0.25, W and beta from seed 0, training/test data from seeds
    # 100, 101 (n_test = 3000 each). Risk against the noiseless target, ridge in the mean
    # convention for lam in {1e-1, 1e-2, 1e-3, 1e-4} and lam = 1e-5 at N = n (close to the
    # interpolation peak: 3x the optimal error). Seed-to-seed fluctuations measured at this size
    # are ~1% (3% at lam = 1e-5), Monte-Carlo error of n_test = 3000 ~1%: tolerance 5% relative.
    d = N = n = 1000
    rng = np.random.default_rng(0)
    W = rng.standard_normal((N, d))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    beta = rng.standard_normal(d)
    beta /= np.linalg.norm(beta)
    lams = [1e-1, 1e-2, 1e-3, 1e-4, 1e-5]
    preds = rf_ridge_prediction_for(W, beta, n, lams, "relu", "tanh", noise_var=0.25)
    sims = np.zeros(len(lams))
    seeds = (100, 101)
    for seed in seeds:
        r = np.random.default_rng(seed)
        X = r.standard_normal((n, d))
        y = np.tanh(X @ beta) + 0.5 * r.standard_normal(n)
        F = np.maximum(X @ W.T, 0.0) / math.sqrt(N)
        gram_ev, gram_vec = np.linalg.eigh(F.T @ F)
        proj = gram_vec.T @ (F.T @ y)
        Xt = r.standard_normal((3000, d))
        Ft = np.maximum(Xt @ W.T, 0.0) / math.sqrt(N)
        for i, lam in enumerate(lams):
            a = gram_vec @ (proj / (gram_ev + n * lam))
            sims[i] += np.mean((np.tanh(Xt @ beta) - Ft @ a) ** 2) / len(seeds)
    for pred, sim in zip(preds, sims, strict=True):
        assert abs(pred.risk / sim - 1) < 0.05, (pred.ridge.lam, pred.risk, sim)
        assert pred.test_error == pytest.approx(pred.risk + 0.25)
    # the interpolation peak is visible: lam = 1e-5 is much worse than the best lam
    assert preds[-1].risk > 2 * min(p.risk for p in preds)


def test_rf_prediction_uses_the_mean_direction():
    # Theory only: with relu features (mu0 != 0) and a constant target, the mean direction 1
    # expresses the constant up to a fraction 1/(1 + t), t = mu0^2 1^T A^-1 1 / N ~ N (A the rest
    # of Omega): effective noise O(1/N) (0.005 at N = 200; bound 0.02). Dropping mu0 makes the
    # whole target noise.
    rng = np.random.default_rng(1)
    W = rng.standard_normal((200, 100))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    beta = np.eye(100)[0]
    c = get_activation("relu").constants
    kwargs = dict(mu1=c.mu1, mu_star=c.mu_star, c0=1.0, c1=0.0, target_norm2=1.0)
    with_mean = rf_ridge_prediction(W, beta, 400, 1e-3, mu0=c.mu0, **kwargs)
    without = rf_ridge_prediction(W, beta, 400, 1e-3, mu0=0.0, **kwargs)
    assert with_mean.effective_noise_var < 0.02
    assert without.effective_noise_var == pytest.approx(1.0)
    assert with_mean.risk < 0.05 < 0.9 < without.risk


def test_per_row_constants_of_a_homogeneous_activation_rescale_the_unit_row_covariance():
    # Exact: relu(r z) = r relu(z), so rows of norms r_i give features r_i * (unit-row feature):
    # Omega(W) = D Omega(W / ||w||) D and q(W) = D q(W / ||w||), D = diag(r), to rounding.
    from twolayer.activations import constants_at_scales
    from twolayer.theory.ridge import rf_gaussian_equivalent_covariance, rf_target_correlation

    rng = np.random.default_rng(2)
    W = rng.standard_normal((120, 60)) * rng.uniform(0.3, 3.0, size=(120, 1))
    beta = np.eye(60)[0]
    r = np.linalg.norm(W, axis=1)
    act = get_activation("relu")
    c = act.constants
    m0, m1, norm2 = constants_at_scales(act, r)
    ms = np.sqrt(norm2 - m0**2 - m1**2)
    unit = W / r[:, None]
    omega = rf_gaussian_equivalent_covariance(W, m0, m1, ms)
    omega_unit = rf_gaussian_equivalent_covariance(unit, c.mu0, c.mu1, c.mu_star)
    np.testing.assert_allclose(omega, r[:, None] * omega_unit * r[None, :], rtol=1e-9)
    np.testing.assert_allclose(np.diag(omega) * 120, r**2 / 2, rtol=1e-9)  # E relu(r z)^2
    q = rf_target_correlation(W, beta, m0, m1, 0.3, 0.7)
    q_unit = rf_target_correlation(unit, beta, c.mu0, c.mu1, 0.3, 0.7)
    np.testing.assert_allclose(q, r * q_unit, rtol=1e-9)


def test_prediction_for_gaussian_rows_equals_the_one_with_explicit_per_row_constants():
    # rf_ridge_prediction_for computes each row's constants itself (tanh: not homogeneous);
    # the same numbers from constants computed exactly row by row, to the spline's accuracy.
    rng = np.random.default_rng(4)
    N, d, n = 80, 40, 120
    W = rng.standard_normal((N, d)) / math.sqrt(d)  # rows of norm ~ 1 +- 0.1
    beta = np.eye(d)[1]
    act, link = get_activation("tanh"), get_activation("relu")
    rows = [act.affine(scale=float(v)).constants for v in np.linalg.norm(W, axis=1)]
    m0, m1 = np.array([c.mu0 for c in rows]), np.array([c.mu1 for c in rows])
    ms = np.array([c.mu_star for c in rows])
    cg = link.constants
    direct = rf_ridge_prediction(W, beta, n, 1e-2, mu0=m0, mu1=m1, mu_star=ms, c0=cg.mu0,
                                 c1=cg.mu1, target_norm2=cg.norm2, noise_var=0.1)
    auto = rf_ridge_prediction_for(W, beta, n, 1e-2, act, link, noise_var=0.1)
    assert auto.test_error == pytest.approx(direct.test_error, rel=1e-9)


def test_prediction_takes_every_form_a_spec_accepts():
    """A link as a mapping (as specs write it) gives the prediction of the same link by name."""
    from twolayer.activations import get_activation
    from twolayer.theory.ridge import rf_ridge_prediction_for

    rng = np.random.default_rng(0)
    W = rng.standard_normal((30, 20)) / np.sqrt(20)
    beta = rng.standard_normal(20)
    beta /= np.linalg.norm(beta)
    by_name = rf_ridge_prediction_for(W, beta, 40, 0.1, "relu", "tanh")
    mapping = rf_ridge_prediction_for(W, beta, 40, 0.1, {"name": "relu"}, {"name": "tanh"})
    poly = {"name": "hermite_poly", "coefficients": [0.0, 1.0, 0.5]}
    as_mapping = rf_ridge_prediction_for(W, beta, 40, 0.1, "relu", poly)
    as_object = rf_ridge_prediction_for(
        W, beta, 40, 0.1, "relu", get_activation("hermite_poly", coefficients=[0.0, 1.0, 0.5])
    )
    assert mapping.test_error == by_name.test_error
    assert as_mapping.test_error == as_object.test_error
