"""Quick mode of the polynomial-spikes recipe: every claim holds on fresh seed 1000 (not the
calibration seeds 200-207), the report and figures exist.

Also pins the power-counting helper the recipe uses for its spike sizes."""

import math

import numpy as np
import pytest
from recipe_checks import check_quick_mode

from twolayer.activations import get_activation
from twolayer.recipes.polynomial_spikes import polynomial_spike_strengths


@pytest.mark.slow
def test_polynomial_spikes_quick(tmp_path):
    result = check_quick_mode("polynomial-spikes", tmp_path, seeds=1000)
    assert (result.out / "claims.csv").exists()


def _simulated_u(act, *, N, n, d, c1, y2, k, draws, seed=0):
    """Monte Carlo oracle for ||u||^k, u = X^T (y - f_0) / n the right vector of the first
    gradient's rank-one part: drawn X, teacher y = c_1 h_1(t) + sqrt(E y^2 - c_1^2) h_2(t)
    (t = <beta, x>) and the student's own output at init f_0 = a^T sigma(W_0 x) / sqrt(N) (rows
    of W_0 on the unit sphere, a ~ N(0, 1)). Returns the mean and standard error over draws."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(draws):
        beta = rng.standard_normal(d)
        beta /= np.linalg.norm(beta)
        W0 = rng.standard_normal((N, d))
        W0 /= np.linalg.norm(W0, axis=1, keepdims=True)
        a = rng.standard_normal(N)
        X = rng.standard_normal((n, d))
        t = X @ beta
        y = c1 * t + math.sqrt(y2 - c1**2) * (t**2 - 1) / math.sqrt(2)
        f0 = act(X @ W0.T) @ a / math.sqrt(N)
        values.append(np.linalg.norm(X.T @ (y - f0) / n) ** k)
    values = np.asarray(values)
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(draws))


@pytest.mark.parametrize("k", [1, 2])
def test_spike_strength_small_step_limit(k):
    """For small steps c_k(s) ~ s^k E[sigma^(k)] / sqrt(k!), so the size is
    eta^k N^((1-k)/2) (mu_1 ||u||)^k |E sigma^(k)| sqrt((2k-1)!!/k!); relu-free smooth sigma.
    ||u||^k is not re-typed from the helper's formula: it is drawn (:func:`_simulated_u`), and
    the tolerance is 3 standard errors of the draws plus the O(s^2) correction."""
    act = get_activation("softplus", center=True)
    N = n = d = 900
    y2, c1 = 2.0, 1.0
    eta = 0.05
    got = polynomial_spike_strengths(eta, [k], act, N=N, n=n, d=d, y2=y2, c1=c1)[0, 0]
    uk, se = _simulated_u(act, N=N, n=n, d=d, c1=c1, y2=y2, k=k, draws=12)
    z, w = np.polynomial.hermite_e.hermegauss(120)
    w = w / w.sum()
    sigmoid = 1.0 / (1.0 + np.exp(-z))
    deriv = {1: float(w @ sigmoid), 2: float(w @ (sigmoid * (1 - sigmoid)))}[k]
    double_fact = {1: 1.0, 2: 3.0}[k]
    factor = (
        eta**k
        * N ** ((1 - k) / 2)
        * 0.5**k
        * abs(deriv)
        * math.sqrt(double_fact / math.factorial(k))
    )
    # the exact c_k(s) differs from its leading term by O(s^2), s ~ eta ||u|| / sqrt(N) ~ 3e-3
    assert abs(got - factor * uk) <= 3.0 * factor * se + 1e-3 * factor * uk


def test_spike_strength_vanishing_coefficient():
    """Centred softplus has E sigma'''(z) = 0: no degree-3 spike at any step size."""
    act = get_activation("softplus", center=True)
    got = polynomial_spike_strengths([1.0, 10.0], [3], act, N=400, n=400, d=400, y2=2.0, c1=1.0)
    assert np.all(got < 1e-10)
