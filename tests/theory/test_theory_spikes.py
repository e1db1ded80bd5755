"""Spike counts after one giant step (Moniri et al.), two steps, one-step overlap (Ba et al.)."""

import math

import numpy as np
import pytest

from twolayer.activations import get_activation, hermite_coefficients
from twolayer.theory.spikes import (
    moniri_spike_count,
    moniri_spike_degrees,
    moniri_term_exponent,
    moniri_thresholds,
    one_step_spike_overlap,
    two_step_outlier_orders,
    two_step_spike_count,
)


def test_moniri_intervals():
    # Exact: ell spikes for (ell-1)/(2 ell) < alpha < ell/(2 ell + 2), and the power counting
    # (k-th term exponent > 1/2 iff alpha > (k-1)/(2k)) gives the same count.
    np.testing.assert_allclose(moniri_thresholds(4), [0, 1 / 4, 1 / 3, 3 / 8])
    for alpha, count in [(0.0, 0), (0.1, 1), (0.24, 1), (0.26, 2), (0.33, 2), (0.34, 3),
                         (0.37, 3), (0.38, 4), (0.44, 8)]:
        assert moniri_spike_count(alpha) == count
        assert sum(moniri_term_exponent(k, alpha) > 0.5 for k in range(1, 50)) == count
    # at a threshold the k-th term is at the bulk scale and not counted
    assert moniri_spike_count(0.25) == 1 and moniri_spike_count(1 / 3) == 2
    with pytest.raises(ValueError):
        moniri_spike_count(0.5)


def test_degrees_filtered_by_hermite_coefficients():
    # softplus - z/2 is even, so its odd Hermite coefficients of degree >= 3 vanish: the third
    # spike is absent. tanh is odd: even degrees vanish. A student with mu1 = 0 has no spike.
    softplus = hermite_coefficients(get_activation("softplus"), 6)
    assert moniri_spike_degrees(0.36, softplus) == [1, 2]
    assert moniri_spike_degrees(0.39, softplus) == [1, 2, 4]
    tanh = hermite_coefficients(get_activation("tanh"), 6)
    assert moniri_spike_degrees(0.36, tanh) == [1, 3]
    he2 = hermite_coefficients(get_activation("hermite", k=2), 4)
    assert moniri_spike_degrees(0.36, he2) == []


def test_two_step_counts():
    # Exact: floor(alpha2 / (1/2 - alpha1)); the power-counting orders j >= 1 are the same
    # number, the plain step-2 spike j = 0 is listed separately (not simulated here).
    assert two_step_spike_count(0.0, 0.2) == 0
    assert two_step_spike_count(0.25, 0.3) == 1
    assert two_step_spike_count(0.3, 0.45) == 2
    for a1, a2 in [(0.0, 0.2), (0.25, 0.3), (0.3, 0.45), (0.4, 0.45)]:
        orders = two_step_outlier_orders(a1, a2)
        assert orders[0] == 0
        assert len(orders) - 1 == two_step_spike_count(a1, a2)


def test_ba_overlap_against_simulation():
    # One giant step direction X^T y / n vs beta: squared overlap c1^2 / (c1^2 + E[y^2] d / n).
    # d = 600, n = 1800 (n/d = 3), tanh teacher (c1 = 0.606, E y^2 = 0.394), 4 seeds.
    # The overlap's seed-to-seed std at this size is ~0.01 (O(d^-1/2)); tolerance 0.03.
    d, n = 600, 1800
    c = get_activation("tanh").constants
    pred = one_step_spike_overlap(c.mu1, c.norm2, n / d)
    vals = []
    for seed in range(4):
        rng = np.random.default_rng(seed)
        beta = rng.standard_normal(d)
        beta /= np.linalg.norm(beta)
        X = rng.standard_normal((n, d))
        g = X.T @ np.tanh(X @ beta) / n
        vals.append((g @ beta) ** 2 / (g @ g))
    assert abs(np.mean(vals) - pred) < 0.03


def _one_step_features(n, alpha, c, seed):
    """Moniri et al. setup: returns singular values and left vectors of F = sigma(X~ W_1^T), the
    direction t of the data along the update's right singular vector, and the bulk reference."""
    act = get_activation("softplus", center=True)
    rng = np.random.default_rng(seed)
    N = d = n
    W0 = rng.standard_normal((N, d))
    W0 /= np.linalg.norm(W0, axis=1, keepdims=True)
    a = rng.standard_normal(N) / math.sqrt(N)
    beta = rng.standard_normal(d)
    beta /= np.linalg.norm(beta)
    X = rng.standard_normal((n, d))
    y = np.tanh(X @ beta) + (X @ beta) ** 2 - 1
    pre = X @ W0.T
    residual = y - act.fn(pre) @ a
    minus_grad = ((act.derivative(pre) * residual[:, None]).T @ X / n) * a[:, None]  # (N, d)
    _, _, vt = np.linalg.svd(minus_grad, full_matrices=False)
    X_new = rng.standard_normal((n, d))
    t = X_new @ vt[0]
    t /= t.std()
    out = []
    for al in alpha:
        W1 = W0 + c * n**al * minus_grad
        F = act.fn(X_new @ W1.T)
        ev, vecs = np.linalg.eigh(F @ F.T)
        out.append((np.sqrt(np.clip(ev[::-1], 0, None)), vecs[:, ::-1]))
    return t, out


@pytest.mark.slow
def test_one_step_spike_count_trend_against_simulation():
    # Moniri et al. setup (f = a^T sigma(W x), unit rows, a ~ N(0, I/N), loss (1/2n) sum (y-f)^2,
    # W_1 = W_0 - eta grad, eta = 3 n^alpha), n = N = d = 800, centred softplus, teacher
    # y = tanh(t) + He2(t), seed 0; spikes of F = sigma(X~ W_1^T) on fresh data. A spike is a
    # singular value above 1.3 x the 11th largest (a bulk value: the bulk's top values differ by
    # a few %, so 30% separates genuine outliers; assumes <= 10 spikes). One alpha in each of
    # three intervals: 0.1 in (0, 1/4) -> 1 spike; 0.3 in (1/4, 1/3) -> 2; 0.36 in (1/3, 3/8)
    # -> 3 in general but 2 for softplus, whose third Hermite coefficient is 0. The constant
    # c = 3 was chosen so the finite-size counts sit inside the intervals (c = 1 gives 0, 1, 1;
    # c = 5 gives a second spike already at alpha = 0.2): the test pins the trend and the
    # degree filter, not the interval edges. The j-th spike's left singular vector lies in
    # span{1, t, ..., t^j} (t: data along the update's direction): projection norm > 0.9.
    alphas = (0.1, 0.3, 0.36)
    t, spectra = _one_step_features(800, alphas, 3.0, seed=0)
    softplus = hermite_coefficients(get_activation("softplus"), 6)
    counts = []
    for alpha, (s, vecs) in zip(alphas, spectra, strict=True):
        count = int(np.sum(s > 1.3 * s[10]))
        counts.append(count)
        assert count == len(moniri_spike_degrees(alpha, softplus)), (alpha, s[:5] / s[10])
        for j in range(count):
            basis, _ = np.linalg.qr(np.stack([t**i for i in range(j + 2)], axis=1))
            assert np.linalg.norm(basis.T @ vecs[:, j]) > 0.9
    assert counts == sorted(counts)
