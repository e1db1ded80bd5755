"""Quick mode of the two-step recipe: every claim holds on fresh seeds 1000-1001 (not the
calibration seeds 200-207), the report and figures exist; and the merged-spike helper against
drawn rank-one updates."""

import math

import numpy as np
import pytest
from recipe_checks import check_quick_mode

from twolayer.recipes.two_step import combined_spike


@pytest.mark.slow
def test_two_step_quick(tmp_path):
    check_quick_mode("two-step", tmp_path, seeds=1000)


def _merged_rank_one_norm(c, alphas, *, N, n, d, mu1, c1, y2, a_norm, reuse, draws, seed=0):
    """Monte Carlo oracle: mu_1 ||a|| ||eta_1 u_1 + eta_2 u_2|| with u_k = X_k^T y_k / n drawn
    (y = c_1 z + sqrt(E y^2 - c_1^2) xi, z = <beta, x>), averaged over draws."""
    rng = np.random.default_rng(seed)
    e1, e2 = (ck * N**ak for ck, ak in zip(c, alphas, strict=True))
    values = []
    for _ in range(draws):
        beta = rng.standard_normal(d)
        beta /= np.linalg.norm(beta)
        us = []
        for _k in range(1 if reuse else 2):
            X = rng.standard_normal((n, d))
            y = c1 * (X @ beta) + math.sqrt(y2 - c1**2) * rng.standard_normal(n)
            us.append(X.T @ y / n)
        u1, u2 = us[0], us[-1]
        values.append(mu1 * a_norm * np.linalg.norm(e1 * u1 + e2 * u2))
    return float(np.mean(values))


def test_combined_spike_is_norm_of_merged_rank_one():
    """mu_1 ||a|| ||eta_1 u_1 + eta_2 u_2|| with the limits of ||u_k||^2 and <u_1, u_2>, against
    the same norm of drawn u_k (independent batches, and a reused one); one step (eta_2 = 0) is
    the one-step spike. The draws' relative spread of ||u|| is ~ (d/n) / sqrt(d) / 2: with 8
    draws at n = 2000, d = 500 the mean is within ~0.3% (tolerance 1.5%)."""
    kw = dict(N=400, n=2000, d=500, mu1=0.5, c1=0.6, y2=0.8, a_norm=1.0)
    for c, reuse in (((2.0, 0.0), False), ((2.0, 3.0), True), ((2.0, 3.0), False),
                     ((1.0, 1.0), False)):
        got = combined_spike(c, (0.1, 0.2), reuse=reuse, **kw)
        oracle = _merged_rank_one_norm(c, (0.1, 0.2), reuse=reuse, draws=8, **kw)
        assert got == pytest.approx(oracle, rel=0.015), (c, reuse)
