"""XOR clusters: Bayes error and linear classifiers against Monte Carlo."""

import itertools
import math

import numpy as np
import pytest

from twolayer.theory.xor import (
    xor_bayes_error,
    xor_best_affine_error,
    xor_homogeneous_linear_error,
    xor_noisy_error,
)


def _sample(rng, n, m, d, p):
    mu1, mu2 = m * np.eye(d)[0], m * np.eye(d)[1]
    cluster = rng.integers(0, 4, n)
    means = np.stack([mu1, -mu1, mu2, -mu2])[cluster]
    clean = np.where(cluster < 2, 1, -1)
    flip = rng.random(n) < p
    return means + rng.standard_normal((n, d)), clean, np.where(flip, -clean, clean)


def test_limits():
    # Exact: m = 0 gives 1/2; large m gives the noise rate p; noise formula p + (1 - 2p) e.
    assert xor_bayes_error(0.0) == pytest.approx(0.5, abs=1e-12)
    assert xor_bayes_error(12.0, 0.15) == pytest.approx(0.15, abs=1e-12)
    assert xor_noisy_error(0.1, 0.2) == pytest.approx(0.2 + 0.6 * 0.1)
    errs = [xor_bayes_error(m) for m in (0.5, 1, 2, 3, 5)]
    assert all(a > b for a, b in itertools.pairwise(errs))
    assert xor_best_affine_error(15.0) == pytest.approx(0.25, abs=1e-6)
    assert xor_homogeneous_linear_error(0.15) == 0.5


@pytest.mark.parametrize(("m", "p"), [(1.0, 0.0), (2.0, 0.15), (3.0, 0.1)])
def test_bayes_and_linear_errors_against_monte_carlo(m, p):
    # 100,000 samples in d = 3 (seed 7): Monte Carlo standard error sqrt(e(1-e)/n) <= 0.0016;
    # tolerance 0.006 (~4 SE). The Bayes rule is |u| > |v|; a random homogeneous linear classifier
    # errs 1/2; the affine optimum (angle, threshold) found by the theory is re-evaluated on data,
    # and no affine classifier on a coarse grid does better than it by more than the tolerance.
    rng = np.random.default_rng(7)
    X, _clean, noisy = _sample(rng, 100_000, m, 3, p)
    u, v = X[:, 0], X[:, 1]
    bayes = np.where(np.abs(u) > np.abs(v), 1, -1)
    assert abs(np.mean(bayes != noisy) - xor_bayes_error(m, p)) < 0.006
    w = rng.standard_normal(3)
    assert abs(np.mean(np.sign(X @ w) != noisy) - 0.5) < 0.006
    best = 1.0
    for angle in np.linspace(0, math.pi / 2, 10):
        proj = math.cos(angle) * u + math.sin(angle) * v
        for t in np.linspace(0, m + 3, 16):
            e = np.mean(np.where(proj > t, 1, -1) != noisy)
            best = min(best, e, 1 - e)
    assert best > xor_best_affine_error(m, p) - 0.006
    assert best < xor_best_affine_error(m, p) + 0.02  # the coarse grid gets close to the optimum
