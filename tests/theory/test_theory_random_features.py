"""Mei–Montanari random-features ridge asymptotics: exact checks and Monte Carlo."""

import math

import numpy as np
import pytest

from twolayer.activations import get_activation
from twolayer.theory.random_features import (
    mei_montanari_penalty_to_mean,
    mei_montanari_ridgeless,
    mei_montanari_risk,
    mei_montanari_risk_for,
)

RELU = get_activation("relu").constants


def _approximation_error(psi1: float) -> float:
    """A(psi1): risk of the best predictor sum_a c_a relu(<w_a, x>) (infinitely many samples)
    for the unit linear target <beta, x>, from the Gaussian equivalence relu(<w_a, x>) ~ mu0 +
    mu1 <w_a, x> + mu_star z_a (z_a independent): A = 1 - beta' mu1^2 W'(mu1^2 W W' +
    mu_star^2 I)^-1 W beta = l m(-l), l = mu_star^2 / mu1^2, m the Stieltjes transform of W'W
    (N = psi1 d rows of variance 1/d: m = 1 / (l + psi1 / (1 + m)), a quadratic)."""
    lam = RELU.mu_star**2 / RELU.mu1**2
    b = lam + psi1 - 1.0
    m = (-b + math.sqrt(b * b + 4.0 * lam)) / (2.0 * lam)
    return lam * m


@pytest.mark.parametrize(
    ("psi1", "psi2", "bias", "variance"),
    [(0.5, 3, 0.8100, 0.2000), (2, 1, 0.7365, 1.4385), (5, 3, 0.2451, 1.8223),
     (3, 5, 0.3622, 1.5000)],
)
def test_ridgeless_relu_table(psi1, psi2, bias, variance):
    # The (B, V) values (4 decimals) are pinned to the closed form, and each is checked against
    # a computation that does not use it:
    # - psi1 < psi2 (least squares on N < n features), derived: V = psi1 / (psi2 - psi1) and
    #   B = A(psi1) psi2 / (psi2 - psi1) (the residual of the best N-feature predictor is, under
    #   Gaussian equivalence, independent of the features: least squares inflates it by
    #   n / (n - N)), with A from the Marchenko-Pastur Stieltjes transform (_approximation_error);
    #   the pinned values are these derived ones rounded (0.8100 = 0.6750 x 6/5, 0.3622 =
    #   0.14487 x 5/2).
    # - every point: the lam -> 0+ limit of the fixed point of Theorem 1 (another equation than
    #   the closed form's quadratic for chi), extrapolated from lam = 1e-6 and 1e-7 (the fixed
    #   point is linear in lam near 0), to 1e-6.
    # - psi1 > psi2 (min-norm interpolation): the Monte Carlo test below
    #   (test_ridgeless_overparameterised_monte_carlo).
    r = mei_montanari_ridgeless(psi1, psi2, mu1=RELU.mu1, mu_star=RELU.mu_star)
    assert r.bias == pytest.approx(bias, abs=6e-5)
    assert r.variance == pytest.approx(variance, abs=6e-5)
    if psi1 < psi2:
        assert r.variance == pytest.approx(psi1 / (psi2 - psi1), rel=1e-12)
        assert r.bias == pytest.approx(_approximation_error(psi1) * psi2 / (psi2 - psi1), rel=1e-9)
    small = [mei_montanari_risk(psi1, psi2, lam, mu1=RELU.mu1, mu_star=RELU.mu_star)
             for lam in (1e-6, 1e-7)]
    extrapolated_bias = (10 * small[1].bias - small[0].bias) / 9
    extrapolated_variance = (10 * small[1].variance - small[0].variance) / 9
    assert extrapolated_bias == pytest.approx(r.bias, abs=1e-6)
    assert extrapolated_variance == pytest.approx(r.variance, abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize(("psi1", "psi2"), [(2, 1), (5, 3)])
def test_ridgeless_overparameterised_monte_carlo(psi1, psi2):
    # Monte Carlo of the min-norm interpolator on ReLU random features (unit rows w_a, Gaussian
    # x, d = 200): B is the risk for the noiseless target <beta, x>, V the risk for pure noise
    # labels of variance 1 (the predictor is linear in y, so the two parts separate exactly).
    # Tolerance: 3 standard errors over 8 seeds + a finite-size term of 5% of the value, from a
    # size sweep on other seeds (100-107): at d = 100 V(5, 3) was 12% (3.3 SE) above the theory,
    # at d = 200 every deviation was within 1.5 SE, the largest 4% (B(2, 1), SE 2.7%).
    d = 200
    N, n = int(psi1 * d), int(psi2 * d)
    r = mei_montanari_ridgeless(psi1, psi2, mu1=RELU.mu1, mu_star=RELU.mu_star)
    biases, variances = [], []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        W = rng.standard_normal((N, d))
        W /= np.linalg.norm(W, axis=1, keepdims=True)
        beta = rng.standard_normal(d)
        beta /= np.linalg.norm(beta)
        X = rng.standard_normal((n, d))
        S = np.maximum(X @ W.T, 0.0)
        Xt = rng.standard_normal((4000, d))
        St = np.maximum(Xt @ W.T, 0.0)
        # min-norm solution a = S' (S S')^-1 y, for both label vectors at once
        Y = np.stack([X @ beta, rng.standard_normal(n)], axis=1)
        A = S.T @ np.linalg.solve(S @ S.T, Y)
        pred = St @ A
        biases.append(np.mean((Xt @ beta - pred[:, 0]) ** 2))
        variances.append(np.mean(pred[:, 1] ** 2))
    for values, theory in ((biases, r.bias), (variances, r.variance)):
        mean, se = np.mean(values), np.std(values, ddof=1) / math.sqrt(len(values))
        assert abs(mean - theory) < 3 * se + 0.05 * theory, (psi1, psi2, theory, mean, se)


@pytest.mark.parametrize("psi1", [0.1, 0.4, 0.8, 1.5])
def test_ridgeless_variance_underparameterised(psi1):
    # Exact: ridgeless, psi1 < psi2: V = psi1 / (psi2 - psi1) (least squares on N features).
    psi2 = 2.0
    r = mei_montanari_ridgeless(psi1, psi2, mu1=RELU.mu1, mu_star=RELU.mu_star)
    assert r.variance == pytest.approx(psi1 / (psi2 - psi1), rel=1e-9)


def test_peak_and_small_width_limit():
    # Exact: E0 -> 0 at psi1 = psi2 (ridgeless risk infinite there, and growing towards it);
    # psi1 -> 0 gives R -> F1^2 + F*^2 (no features, nothing learnt); lam -> infinity likewise.
    r = mei_montanari_ridgeless(2.0, 2.0, mu1=RELU.mu1, mu_star=RELU.mu_star)
    assert abs(r.e0) < 1e-10 and math.isinf(r.risk)
    near = [mei_montanari_ridgeless(p, 2.0, mu1=RELU.mu1, mu_star=RELU.mu_star).risk
            for p in (1.6, 1.9, 1.99)]
    assert near[0] < near[1] < near[2]
    kw = dict(mu1=RELU.mu1, mu_star=RELU.mu_star, signal_linear=1.0, signal_nonlinear=0.3,
              noise_var=0.5)
    assert mei_montanari_risk(1e-7, 2.0, 0.1, **kw).risk == pytest.approx(1.3, abs=1e-4)
    assert mei_montanari_ridgeless(1e-7, 2.0, **kw).risk == pytest.approx(1.3, abs=1e-4)
    assert mei_montanari_risk(1.0, 2.0, 1e9, **kw).risk == pytest.approx(1.3, abs=1e-4)


def test_notes_monte_carlo_values():
    # The theory values quoted with their Monte Carlo checks in THEORY-NOTES (4 decimals).
    assert mei_montanari_risk_for(0.5, 3, 0.01, "relu", noise_var=0.25).risk == pytest.approx(
        0.8504, abs=1e-4)
    assert mei_montanari_risk_for(2, 1, 0.001, "relu").risk == pytest.approx(0.7255, abs=1e-4)
    assert mei_montanari_risk_for(
        1, 2, 0.05, "relu", noise_var=0.5, signal_nonlinear=0.3).risk == pytest.approx(
        1.2768, abs=1e-4)
    assert mei_montanari_penalty_to_mean(0.5, 100) == pytest.approx(0.005)


@pytest.mark.slow
def test_against_simulation_across_the_peak():
    # Monte Carlo: d = 300, psi2 = n/d = 2 (n = 600), ReLU features sigma(<w_a, x>) with unit
    # rows, Gaussian x, target <beta, x> + sqrt(0.2) He2(<beta, x>)/sqrt 2 (F1^2 = 1, F*^2 = 0.2),
    # noise tau^2 = 0.25, Mei–Montanari penalty (N lam / d) ||a||^2 with lam = 0.01, risk against
    # the noiseless target on 2000 test points; 5 seeds per psi1 in {0.5, 1.6 (the top of the
    # regularised peak), 2.0 (N = n), 4.0}. At this size the seed-to-seed std is 5-12% of the
    # risk (largest near the peak); tolerance: 5% or 3 standard errors of the mean, whichever
    # is larger.
    d, psi2, lam, f_nl, tau2 = 300, 2.0, 0.01, 0.2, 0.25
    n = int(psi2 * d)
    for psi1 in (0.5, 1.6, 2.0, 4.0):
        N = int(psi1 * d)
        theory = mei_montanari_risk(psi1, psi2, lam, mu1=RELU.mu1, mu_star=RELU.mu_star,
                                    signal_linear=1.0, signal_nonlinear=f_nl, noise_var=tau2)
        risks = []
        for seed in range(5):
            rng = np.random.default_rng(1000 * seed + N)
            W = rng.standard_normal((N, d))
            W /= np.linalg.norm(W, axis=1, keepdims=True)
            beta = rng.standard_normal(d)
            beta /= np.linalg.norm(beta)

            def target(X, beta=beta):
                t = X @ beta
                return t + math.sqrt(f_nl) * (t**2 - 1) / math.sqrt(2)

            X = rng.standard_normal((n, d))
            y = target(X) + math.sqrt(tau2) * rng.standard_normal(n)
            S = np.maximum(X @ W.T, 0.0)
            ridge = n * N * lam / d
            if N <= n:
                a = np.linalg.solve(S.T @ S + ridge * np.eye(N), S.T @ y)
            else:
                a = S.T @ np.linalg.solve(S @ S.T + ridge * np.eye(n), y)
            Xt = rng.standard_normal((2000, d))
            risks.append(np.mean((target(Xt) - np.maximum(Xt @ W.T, 0.0) @ a) ** 2))
        mean, se = np.mean(risks), np.std(risks, ddof=1) / math.sqrt(len(risks))
        tol = max(0.05 * theory.risk, 3 * se)
        assert abs(mean - theory.risk) < tol, (psi1, theory.risk, mean, se)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_constant_in_the_target_against_simulation(activation):
    """y = 1 + <beta, x>: for tanh (mu_0 = 0) the constant is orthogonal to every feature and
    costs beta_0^2 (risk 1.59 here, not the 0.46 of a target without it); for relu (mu_0 != 0)
    the mean feature absorbs it. Monte Carlo at d = 200, psi = (1.5, 2), lam = 0.3 (Mei-Montanari
    penalty), 4 seeds, risk on 2000 noiseless test points; the seed-to-seed std at this size is a
    few per cent of the risk (measured for relu in test_against_simulation_across_the_peak), so
    the tolerance is 6% or 3 standard errors, whichever is larger."""
    from twolayer.activations import get_activation

    d, psi1, psi2, lam = 200, 1.5, 2.0, 0.3
    N, n = int(psi1 * d), int(psi2 * d)
    theory = mei_montanari_risk_for(psi1, psi2, lam, activation, mean_signal=1.0).risk
    plain = mei_montanari_risk_for(psi1, psi2, lam, activation).risk
    sigma = get_activation(activation)
    risks = []
    for seed in range(4):
        rng = np.random.default_rng(77 + seed)
        W = rng.standard_normal((N, d))
        W /= np.linalg.norm(W, axis=1, keepdims=True)
        beta = rng.standard_normal(d)
        beta /= np.linalg.norm(beta)
        X = rng.standard_normal((n, d))
        y = 1.0 + X @ beta
        S = sigma(X @ W.T)
        a = np.linalg.solve(S.T @ S + n * N * lam / d * np.eye(N), S.T @ y)
        Xt = rng.standard_normal((2000, d))
        risks.append(np.mean((1.0 + Xt @ beta - sigma(Xt @ W.T) @ a) ** 2))
    mean, se = np.mean(risks), np.std(risks, ddof=1) / math.sqrt(len(risks))
    assert abs(mean - theory) < max(0.06 * theory, 3 * se), (theory, plain, mean, se)
    if activation == "tanh":
        assert theory > 1.0 > plain
    else:
        assert theory == plain
