"""Marchenko–Pastur law and Tracy–Widom scale against the spectra of simulated W_0."""

import math

import numpy as np
import pytest
import scipy.integrate

from twolayer.theory.marchenko_pastur import (
    TRACY_WIDOM1_MEAN,
    TRACY_WIDOM1_STD,
    mp_atom,
    mp_cdf,
    mp_density,
    mp_eigenvalue_edges,
    mp_singular_value_edge,
    mp_singular_value_edges,
    tracy_widom_scale,
)


@pytest.mark.parametrize("c", [0.25, 0.5, 1.0, 2.0, 4.0])
@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_density_mass_and_cdf_agree(c, scale):
    # Exact: the continuous part has mass min(1, 1/c); two paths (cdf by angle quadrature vs
    # quad of the density) agree; F(b) = 1 and F(0) = atom.
    a, b = mp_eigenvalue_edges(c, scale)
    mass, _ = scipy.integrate.quad(lambda x: mp_density(x, c, scale), a, b, limit=400)
    assert abs(mass - min(1.0, 1.0 / c)) < 1e-6
    assert abs(float(mp_cdf(b, c, scale)) - 1.0) < 1e-10
    assert abs(float(mp_cdf(0.0, c, scale)) - mp_atom(c)) < 1e-12
    x = a + (b - a) * 0.37
    direct, _ = scipy.integrate.quad(lambda t: mp_density(t, c, scale), a, x, limit=400)
    assert abs(float(mp_cdf(x, c, scale)) - mp_atom(c) - direct) < 1e-6
    grid = np.linspace(a, b, 50)
    assert np.all(np.diff(mp_cdf(grid, c, scale)) >= 0)


def test_edges_formulas():
    assert mp_singular_value_edges(0.5) == pytest.approx((1 - math.sqrt(0.5), 1 + math.sqrt(0.5)))
    assert mp_singular_value_edge(1000, 2000) == pytest.approx(1 + math.sqrt(0.5))
    assert mp_singular_value_edge(1000, 2000, variance=4.0) == pytest.approx(
        2 * (math.sqrt(1000) + math.sqrt(2000)))


@pytest.mark.parametrize(("N", "d", "rows"), [(1000, 2000, "gaussian"), (1500, 1000, "sphere")])
def test_extreme_singular_values_of_W0(N, d, rows):
    # Sizes N, d = 1000-2000, seed 0. Entries N(0, 1/d) or rows uniform on the unit sphere (the
    # project's two initialisations). The largest singular value fluctuates around the edge on the
    # Tracy–Widom scale s_TW (~0.004 here) with mean offset -1.2 s_TW and std 1.27 s_TW; the
    # smallest non-zero one (soft edge, c != 1) on a scale <= s_TW. Tolerance 6 s_TW (~1.5%):
    # a TW_1 excursion that large has probability < 1e-4.
    rng = np.random.default_rng(0)
    W = rng.standard_normal((N, d))
    W = W / math.sqrt(d) if rows == "gaussian" else W / np.linalg.norm(W, axis=1, keepdims=True)
    small = W @ W.T if N <= d else W.T @ W  # singular values via the smaller Gram matrix
    s = np.sqrt(np.clip(np.linalg.eigvalsh(small)[::-1], 0.0, None))
    lo, hi = mp_singular_value_edges(N / d)
    scale = tracy_widom_scale(N, d)
    assert hi == pytest.approx(mp_singular_value_edge(N, d))
    assert abs(s[0] - hi) < 6 * scale
    assert abs(s[-1] - lo) < 6 * scale
    # bulk: the empirical eigenvalue CDF of W W^T (non-zero part) follows MP; eigenvalue rigidity
    # makes the Kolmogorov distance O(log N / N); tolerance 0.01.
    # (checked at every 20th eigenvalue to keep the quadratures cheap)
    ev = np.sort(s**2)
    n_ev = ev.size
    emp = (np.arange(1, n_ev + 1) + (N - n_ev)) / N  # the N - d zero eigenvalues when c > 1
    cdf = mp_cdf(ev[::20], N / d)
    assert np.max(np.abs(cdf - emp[::20])) < 0.01


def test_tracy_widom_mean_and_std_of_largest_singular_value():
    # N = 200, d = 400, 40 seeds: (s_max - edge) / s_TW should have the TW_1 mean -1.21 and
    # std 1.27. Monte Carlo standard errors: 1.27/sqrt(40) = 0.2 (mean), ~0.15 (std); finite-size
    # corrections O(N^(-1/3)) ~ 0.17. Tolerances: 0.7 on the mean, 0.5 on the std.
    N, d = 200, 400
    edge, scale = mp_singular_value_edge(N, d), tracy_widom_scale(N, d)
    z = []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        W = rng.standard_normal((N, d)) / math.sqrt(d)
        s1 = math.sqrt(np.linalg.eigvalsh(W @ W.T)[-1])
        z.append((s1 - edge) / scale)
    z = np.array(z)
    assert abs(z.mean() - TRACY_WIDOM1_MEAN) < 0.7
    assert abs(z.std(ddof=1) - TRACY_WIDOM1_STD) < 0.5
