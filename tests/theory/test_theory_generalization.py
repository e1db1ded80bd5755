"""Path-norm Rademacher bound (twolayer.theory.generalization): exact Rademacher complexities at
tiny sizes (enumerating every sign vector) lie below the bound, and the bound is not loose by an
unreasonable factor; path norm invariances; the gap bound's arithmetic."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from twolayer.theory.generalization import (
    LIPSCHITZ_CONSTANTS,
    lipschitz_gap_bound,
    path_norm,
    relu_rademacher_bound,
    rms_norm,
)


def _all_signs(n: int) -> np.ndarray:
    return np.array(list(itertools.product([-1.0, 1.0], repeat=n)))


def _relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0.0)


def exact_rademacher_1d(x: np.ndarray, P: float) -> float:
    """R_S(F_P) for d = 1: sup over the hull = P max over |v| <= 1 of |sum eps relu(v x)| / n;
    relu(v x) = v relu(x) (v >= 0) or |v| relu(-x) (v < 0), so the sup is attained at v = +-1."""
    eps = _all_signs(x.size)
    plus = np.abs(eps @ _relu(x))
    minus = np.abs(eps @ _relu(-x))
    return float(P * np.mean(np.maximum(plus, minus)) / x.size)


def rademacher_2d(X: np.ndarray, P: float, n_angles: int = 3600) -> float:
    """R_S(F_P) for d = 2 by every sign vector and a fine grid of unit directions v (the sup of
    |sum eps relu(<v, x>)| over ||v|| <= 1 is on the circle); the grid can only underestimate."""
    theta = np.linspace(0.0, 2 * np.pi, n_angles, endpoint=False)
    V = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    G = _relu(X @ V.T)  # (n, angles)
    eps = _all_signs(X.shape[0])
    return float(P * np.mean(np.max(np.abs(eps @ G), axis=1)) / X.shape[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n", [4, 8, 12])
def test_exact_single_neuron_1d_below_bound(seed: int, n: int) -> None:
    # d = 1: the exact complexity (all 2^n sign vectors) is below 2 P rms / sqrt(n), and above a
    # quarter of it (Khintchine: E|sum eps c| >= ||c|| / sqrt(2), and ||relu(x)||^2 or
    # ||relu(-x)||^2 >= ||x||^2 / 2, so R >= P rms / (2 sqrt(n)) = bound / 4)
    x = np.random.default_rng(seed).standard_normal(n)
    P = 1.7
    exact = exact_rademacher_1d(x, P)
    bound = relu_rademacher_bound(P, rms_norm(x[:, None]), n)
    assert exact <= bound
    assert exact >= bound / 4 - 1e-12


def test_exact_single_point_value() -> None:
    # n = 1, x > 0: R = P |x| exactly, and the bound is 2 P |x|
    x = np.array([[2.5]])
    assert exact_rademacher_1d(x[:, 0], 1.0) == pytest.approx(2.5)
    assert relu_rademacher_bound(1.0, rms_norm(x), 1) == pytest.approx(5.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_rademacher_2d_below_bound(seed: int) -> None:
    # d = 2, n = 10, points off the origin: grid sup (an underestimate) below the bound, and not
    # loose by more than 4 sqrt(2): the grid holds +-e_1, +-e_2, and for those four directions
    # sum_v ||relu(X v)||^2 = ||X||_F^2, so by Khintchine R >= P ||X||_F / (2 sqrt(2) n)
    X = np.random.default_rng(seed).standard_normal((10, 2)) + np.array([1.0, 0.5])
    value = rademacher_2d(X, 1.0)
    bound = relu_rademacher_bound(1.0, rms_norm(X), 10)
    assert value <= bound
    assert value >= bound / (4 * math.sqrt(2))


def test_monte_carlo_network_sup_below_bound() -> None:
    # a direct check on networks: the correlation (1/n) sum eps_i f(x_i) of random relu networks
    # scaled to path norm P never exceeds the bound for any sign vector on average
    rng = np.random.default_rng(5)
    X = rng.standard_normal((8, 3))
    P = 2.0
    eps = _all_signs(8)
    best = np.zeros(len(eps))
    for _ in range(300):
        W = rng.standard_normal((5, 3))
        a = rng.standard_normal(5)
        f = _relu(X @ W.T) @ a
        f *= P / path_norm(W, a, 1.0)
        best = np.maximum(best, eps @ f / 8)
    assert best.mean() <= relu_rademacher_bound(P, rms_norm(X), 8)


def test_network_output_bounded_by_path_norm() -> None:
    # |f(x)| <= P ||x|| for a 1-Lipschitz homogeneous sigma with sigma(0) = 0
    rng = np.random.default_rng(3)
    W, a, X = rng.standard_normal((50, 7)), rng.standard_normal(50), rng.standard_normal((200, 7))
    f = _relu(X @ W.T) @ a / 50
    assert np.all(np.abs(f) <= path_norm(W, a, 1 / 50) * np.linalg.norm(X, axis=1) + 1e-12)


def test_path_norm_invariances() -> None:
    # relu(c z) = c relu(z): (w_j, a_j) -> (c_j w_j, a_j / c_j) leaves f and P unchanged;
    # permuting neurons leaves P unchanged
    rng = np.random.default_rng(4)
    W, a = rng.standard_normal((20, 6)), rng.standard_normal(20)
    c = rng.uniform(0.1, 10.0, size=20)
    P = path_norm(W, a, 0.3)
    assert path_norm(W * c[:, None], a / c, 0.3) == pytest.approx(P, rel=1e-12)
    perm = rng.permutation(20)
    assert path_norm(W[perm], a[perm], 0.3) == pytest.approx(P, rel=1e-12)
    expected = 0.3 * sum(abs(a[j]) * math.sqrt(float(W[j] @ W[j])) for j in range(20))
    assert P == pytest.approx(expected, rel=1e-12)


def test_gap_bound_against_oracles() -> None:
    # Independent oracles, not the formulas re-typed:
    # (1) relu_rademacher_bound = (2P/n) sqrt(E_eps ||sum eps_i x_i||^2), the value of the
    #     Jensen step, with the sign average by exact enumeration of 2^10 sign vectors;
    rng = np.random.default_rng(11)
    X = rng.standard_normal((10, 4))
    second = float(np.mean(np.sum((_all_signs(10) @ X) ** 2, axis=1)))
    assert relu_rademacher_bound(1.7, rms_norm(X), 10) == pytest.approx(
        2 * 1.7 * math.sqrt(second) / 10, rel=1e-12)
    # (2) the confidence term B sqrt(log(1/delta)/(2n)) is Hoeffding's deviation for a mean of
    #     n variables in [0, B]: for the extreme case (values 0 or B with probability 1/2) the
    #     exact binomial tail at that deviation is <= delta, and Hoeffding is tight within the
    #     factor sqrt(2 log(1/delta)) / z_{1-delta} = 1.49 at delta = 0.05 (normal limit), so at
    #     the term divided by 1.6 the exact tail already exceeds delta;
    from scipy import stats

    n, B, delta = 100, 2.0, 0.05
    term = lipschitz_gap_bound(0.1, 1.0, n=n, loss_bound=B, delta=delta) - lipschitz_gap_bound(
        0.1, 1.0)

    def tail(t: float) -> float:  # P(mean - B/2 >= t) for mean of n values in {0, B}
        return float(stats.binom.sf(math.ceil(n * (0.5 + t / B)) - 1, n, 0.5))

    assert tail(term) <= delta
    assert tail(term / 1.6) > delta
    # (3) 2 L R: linear in R and in L, zero at R = 0, and L = 1 for the logistic, hinge and
    #     absolute losses (sup of |d loss / d f|, checked numerically on a grid of f and y).
    assert lipschitz_gap_bound(0.0, 1.0) == 0.0
    assert lipschitz_gap_bound(0.3, 2.0) == pytest.approx(4 * lipschitz_gap_bound(0.15, 1.0))
    f = np.linspace(-30, 30, 600001)
    slopes = {
        "logistic": np.abs(np.diff(np.logaddexp(0.0, -f)) / np.diff(f)).max(),
        "hinge": np.abs(np.diff(np.maximum(0.0, 1.0 - f)) / np.diff(f)).max(),
        "absolute": np.abs(np.diff(np.abs(f - 0.3)) / np.diff(f)).max(),
    }
    assert set(LIPSCHITZ_CONSTANTS) == set(slopes)
    for name, slope in slopes.items():
        assert LIPSCHITZ_CONSTANTS[name] == pytest.approx(slope, abs=1e-3), name


def test_bad_input() -> None:
    with pytest.raises(ValueError):
        lipschitz_gap_bound(0.1, 1.0, n=10)
    with pytest.raises(ValueError):
        relu_rademacher_bound(1.0, 1.0, 0)
    with pytest.raises(ValueError):
        path_norm(np.ones((3, 2)), np.ones(2))
    with pytest.raises(ValueError):
        rms_norm(np.ones(3))
