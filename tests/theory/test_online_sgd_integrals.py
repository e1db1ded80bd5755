"""The Gaussian integrals of the online-SGD ODEs (twolayer.theory.online_sgd) against Monte Carlo.

Each closed form (erf: I2, I3, I4, J2; relu: I2, I3, J2) and each numerical rule (relu I4,
tanh everything) is compared with a Monte Carlo average over 200 000 draws of the correlated
Gaussian. Tolerance: 4 Monte Carlo standard errors (each estimate's own SE, computed from the
draws), so a correct formula fails with probability ~6e-5 per entry; for the numerical rules an
added quadrature term, stated at each test, measured against a finer rule (not against the MC).
Seeds and covariances are fixed.
"""

import math

import numpy as np
import pytest

from twolayer.activations import get_activation
from twolayer.theory.online_sgd import (
    GaussianIntegrals,
    closed_form_of,
    erf_i2,
    erf_i3,
    erf_i4,
    erf_j2,
    expectation_of_product,
    gaussian_expectation_nd,
    relu_i2,
    relu_i3,
    relu_i4,
    relu_j2,
)

N_MC = 200_000


def covariance(seed: int, p: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((p, p))
    return A @ A.T / p + 0.2 * np.eye(p)


def mc(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), float(values.std() / math.sqrt(values.size))


def draws(C: np.ndarray, seed: int) -> np.ndarray:
    return np.random.default_rng(seed + 100).multivariate_normal(np.zeros(len(C)), C, N_MC)


def g(x):  # erf(x / sqrt 2), the activation of the closed forms
    from scipy.special import erf

    return erf(x / math.sqrt(2.0))


def dg(x):
    return math.sqrt(2.0 / math.pi) * np.exp(-x * x / 2.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_erf_closed_forms_against_monte_carlo(seed):
    C = covariance(seed)
    X = draws(C, seed)
    c = C
    cases = [
        (erf_i2(c[0, 0], c[0, 3], c[3, 3]), g(X[:, 0]) * g(X[:, 3])),
        (erf_i3(c[1, 1], c[1, 2], c[1, 0], c[2, 0], c[0, 0]), dg(X[:, 1]) * X[:, 2] * g(X[:, 0])),
        (erf_i4(c[0, 0], c[0, 1], c[0, 2], c[0, 3], c[1, 1], c[1, 2], c[1, 3], c[2, 2], c[2, 3],
                c[3, 3]), dg(X[:, 0]) * dg(X[:, 1]) * g(X[:, 2]) * g(X[:, 3])),
        (erf_j2(c[2, 2], c[2, 3], c[3, 3]), dg(X[:, 2]) * dg(X[:, 3])),
    ]
    for formula, values in cases:
        mean, se = mc(values)
        assert abs(float(formula) - mean) < 4 * se, (formula, mean, se)


def test_relu_closed_forms_against_monte_carlo():
    C = covariance(2)
    X = draws(C, 2)
    c = C
    r = np.maximum(X, 0.0)
    h = (X > 0).astype(float)
    cases = [
        (relu_i2(c[0, 0], c[0, 3], c[3, 3]), r[:, 0] * r[:, 3]),
        (relu_i3(c[1, 1], c[1, 2], c[1, 0], c[2, 0], c[0, 0]), h[:, 1] * X[:, 2] * r[:, 0]),
        # the same variable twice: E[1(x1 > 0) x2 relu(x1)] = C12 / 2
        (relu_i3(c[1, 1], c[1, 2], c[1, 1], c[2, 1], c[1, 1]), h[:, 1] * X[:, 2] * r[:, 1]),
        (relu_j2(c[2, 2], c[2, 3], c[3, 3]), h[:, 2] * h[:, 3]),
    ]
    for formula, values in cases:
        mean, se = mc(values)
        assert abs(float(formula) - mean) < 4 * se, (formula, mean, se)


@pytest.mark.parametrize("name,scale", [("erf", 1 / math.sqrt(2)), ("erf", 1.0), ("relu", 1.0),
                                        ("tanh", 1.0)])
def test_tables_against_monte_carlo(name, scale):
    """Every entry of (I2, I3, I4, J2) for K = M = 2 (student and teacher of one activation;
    erf with twolayer's own scale options goes through the rescaled closed forms).

    tanh goes through the trapezoid rule of expectation_of_product; its quadrature error
    (against rules with about twice the points, not against the MC; test below) is < 2e-5,
    below the MC error bars (~1e-4), so no quadrature term. (A Gauss-Hermite rule of 12
    points per dimension was 17% off on I4[0, 0, 0, 0] = E[tanh'(x)^2 tanh(x)^2], which is
    narrow, and failed this test.) relu
    I4 (Stein's lemma + Plackett's integral, 64 nodes) has no quadrature term: its rule is
    exact to ~1e-10 on these covariances (a plain Gauss-Hermite rule on the kinks was 70% off
    on I4[0, 0, 1, 2] and failed this test)."""
    act = get_activation(name, scale=scale)
    integrals = GaussianIntegrals(act, act)
    C = covariance(3)
    C /= np.max(np.diag(C))  # unit-variance scale, as Q and T in the ODEs
    X = draws(C, 3)
    i2, i3, i4, j2 = integrals.tables(C, 2)
    f, df = act.fn, act.derivative
    F, D = f(X), df(X)
    for a in range(4):
        for c in range(4):
            mean, se = mc(F[:, a] * F[:, c])
            assert abs(i2[a, c] - mean) < 4 * se + 1e-12, ("I2", a, c)
    for i in range(2):
        for b in range(4):
            for c in range(4):
                mean, se = mc(D[:, i] * X[:, b] * F[:, c])
                assert abs(i3[i, b, c] - mean) < 4 * se + 1e-12, ("I3", i, b, c)
    for i in range(2):
        for k in range(2):
            mean, se = mc(D[:, i] * D[:, k])
            assert abs(j2[i, k] - mean) < 4 * se + 1e-12, ("J2", i, k)
            for a in range(4):
                for c in range(4):
                    mean, se = mc(D[:, i] * D[:, k] * F[:, a] * F[:, c])
                    tol = 4 * se + 1e-12
                    assert abs(i4[i, k, a, c] - mean) < tol, ("I4", i, k, a, c, i4[i, k, a, c],
                                                              mean, se)


def test_gauss_hermite_rule_is_exact_on_polynomials():
    # E[x1^2 x2^2] = C11 C22 + 2 C12^2 (Isserlis), exact for >= 2 nodes per dimension
    C = covariance(4, 2)
    value = gaussian_expectation_nd(lambda x: x[..., 0] ** 2 * x[..., 1] ** 2, C, 3)
    assert value == pytest.approx(C[0, 0] * C[1, 1] + 2 * C[0, 1] ** 2, rel=1e-12)
    # a singular covariance (two equal variables) is integrated too: E[x^4] = 3 C11^2
    S = np.array([[C[0, 0], C[0, 0]], [C[0, 0], C[0, 0]]])
    value = gaussian_expectation_nd(lambda x: x[..., 0] ** 2 * x[..., 1] ** 2, S, 3)
    assert value == pytest.approx(3 * C[0, 0] ** 2, rel=1e-10)


def test_closed_form_detection():
    assert closed_form_of(get_activation("erf")).scale == pytest.approx(1.0)
    assert closed_form_of(get_activation("erf", scale=0.5)).scale == pytest.approx(0.5)
    assert closed_form_of(get_activation("relu")).kind == "relu"
    # a shifted or centred erf is not erf(s z): numerical integration
    assert closed_form_of(get_activation("erf", shift=0.3)) is None
    assert closed_form_of(get_activation("tanh")) is None
    assert GaussianIntegrals(get_activation("erf"), get_activation("relu")).kind == "numerical"


def test_relu_i4_plackett_rule_converged():
    """The four-dimensional orthant probability by Plackett's integral: 64 nodes agree with 256
    to 1e-10, and the independent case gives 1/16 + the pairwise terms exactly."""
    from twolayer.theory import online_sgd as m

    C = covariance(5)
    sd = np.sqrt(np.diag(C))
    rho = C / np.outer(sd, sd)
    coarse = m._orthant_probability_4(rho)
    m._plackett_rule.cache_clear()
    rule = m._plackett_rule
    try:
        m._plackett_rule = lambda n=256: rule(256)
        fine = m._orthant_probability_4(rho)
    finally:
        m._plackett_rule = rule
    assert coarse == pytest.approx(fine, abs=1e-10)
    assert m._orthant_probability_4(np.eye(4)) == pytest.approx(1 / 16, abs=1e-15)
    # block-diagonal: P = P2(rho) P2(rho') (Sheppard twice)
    block = np.eye(4)
    block[0, 1] = block[1, 0] = 0.6
    block[2, 3] = block[3, 2] = -0.3
    expected = (0.25 + math.asin(0.6) / (2 * math.pi)) * (0.25 + math.asin(-0.3) / (2 * math.pi))
    assert m._orthant_probability_4(block) == pytest.approx(expected, abs=1e-10)
    # relu_i4 with all four variables equal: E[relu(x)^2] = C11 / 2
    same = np.full((4, 4), 1.7)
    assert relu_i4(same) == pytest.approx(0.85, abs=1e-12)


@pytest.mark.slow
def test_numerical_rule_converged_for_tanh():
    """The trapezoid rule's own error, against rules with about twice the points per dimension
    (unit-variance covariances): every entry of the tanh tables for K = 2, M = 1 (integrals over
    up to 3 distinct variables) and one four-variable I4 entry change by less than 2e-5."""
    act = get_activation("tanh")
    fine_nodes = {1: 121, 2: 81, 3: 61, 4: 35}
    C = covariance(6)
    C /= np.max(np.diag(C))
    coarse = GaussianIntegrals(act, act).tables(C[:3, :3], 2)
    fine = GaussianIntegrals(act, act, nodes=fine_nodes).tables(C[:3, :3], 2)
    for a, b in zip(coarse, fine, strict=True):
        assert np.max(np.abs(a - b)) < 2e-5
    fns = [act.derivative, act.derivative, act.fn, act.fn]
    four = [expectation_of_product(fns, [0, 1, 2, 3], C, nodes)
            for nodes in (GaussianIntegrals(act, act).nodes, fine_nodes)]
    assert abs(four[0] - four[1]) < 2e-5
