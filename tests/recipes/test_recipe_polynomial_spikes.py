"""Quick mode of the polynomial-spikes recipe: every claim holds, the report and figures exist.

Also pins the power-counting helper the recipe uses for its spike sizes."""

import math

import numpy as np
import pytest
from recipe_checks import check_quick_mode

from twolayer.activations import get_activation
from twolayer.recipes.polynomial_spikes import polynomial_spike_strengths


@pytest.mark.slow
def test_polynomial_spikes_quick(tmp_path):
    result = check_quick_mode("polynomial-spikes", tmp_path)
    assert (result.out / "claims.csv").exists()


@pytest.mark.parametrize("k", [1, 2])
def test_spike_strength_small_step_limit(k):
    """For small steps c_k(s) ~ s^k E[sigma^(k)] / sqrt(k!), so the size is
    eta^k N^((1-k)/2) (mu_1 ||u||)^k |E sigma^(k)| sqrt((2k-1)!!/k!); relu-free smooth sigma."""
    act = get_activation("softplus", center=True)
    N = n = d = 900
    y2, c1 = 2.0, 1.0
    eta = 0.05
    got = polynomial_spike_strengths(eta, [k], act, N=N, n=n, d=d, y2=y2, c1=c1)[0, 0]
    z, w = np.polynomial.hermite_e.hermegauss(120)
    w = w / w.sum()
    norm2 = float(w @ act(z) ** 2)
    u = math.sqrt(c1**2 + (y2 + norm2) * d / n)
    sigmoid = 1.0 / (1.0 + np.exp(-z))
    deriv = {1: float(w @ sigmoid), 2: float(w @ (sigmoid * (1 - sigmoid)))}[k]
    double_fact = {1: 1.0, 2: 3.0}[k]
    expected = (
        eta**k
        * N ** ((1 - k) / 2)
        * (0.5 * u) ** k
        * abs(deriv)
        * math.sqrt(double_fact / math.factorial(k))
    )
    # the exact c_k(s) differs from its leading term by O(s^2), s ~ eta ||u|| / sqrt(N) ~ 3e-3
    assert got == pytest.approx(expected, rel=1e-3)


def test_spike_strength_vanishing_coefficient():
    """Centred softplus has E sigma'''(z) = 0: no degree-3 spike at any step size."""
    act = get_activation("softplus", center=True)
    got = polynomial_spike_strengths([1.0, 10.0], [3], act, N=400, n=400, d=400, y2=2.0, c1=1.0)
    assert np.all(got < 1e-10)
