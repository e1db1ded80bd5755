"""The shared fixed-point iterator and the ridge effective regularisation (exact checks)."""

import math
import warnings

import numpy as np
import pytest
import scipy.optimize

from twolayer.theory.fixed_point import (
    ConvergenceWarning,
    FixedPointError,
    check_converged,
    iterate_fixed_point,
)
from twolayer.theory.ridge import effective_regularization


def test_iterator_finds_cosine_fixed_point():
    # x = cos x has the unique root 0.7390851332151607 (Dottie number); contraction factor ~0.67
    res = iterate_fixed_point(np.cos, 1.0, damping=0.5, tol=1e-14)
    assert res.converged
    assert abs(res.x[0] - 0.7390851332151607) < 1e-12
    assert res.residual <= 1e-14
    assert 1 < res.n_iter < 200


def test_iterator_reports_non_convergence_and_solvers_raise_or_warn():
    # x -> 2x + 1 diverges from any start other than -1 (plain iteration, no damping)
    res = iterate_fixed_point(lambda x: 2 * x + 1, [0.0], damping=0.0, max_iter=50)
    assert not res.converged
    with pytest.raises(FixedPointError, match="not converged"):
        check_converged(res, "toy")
    with pytest.warns(ConvergenceWarning):
        check_converged(res, "toy", on_fail="warn")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_converged(res, "toy", on_fail="ignore")


def test_iterator_stops_on_non_finite():
    res = iterate_fixed_point(lambda x: x * np.inf, [1.0])
    assert not res.converged and res.residual == np.inf


@pytest.mark.parametrize("n", [50, 200, 400])
@pytest.mark.parametrize("lam", [0.0, 1e-6, 1e-2, 1.0])
def test_effective_regularization_matches_bracketing_root(n, lam):
    # Two computation paths: Newton through the shared iterator vs scipy's brentq on
    # G(kappa) = lam/kappa + df1/n - 1 in log kappa. p = 300 eigenvalues with a power-law decay.
    ev = np.arange(1, 301, dtype=float) ** -1.5
    kappa = effective_regularization(ev, n, lam)
    if lam == 0 and n >= ev.size:
        assert kappa == 0.0
        return

    def g(u):
        k = math.exp(u)
        return lam / k + np.sum(ev / (ev + k)) / n - 1.0

    ref = math.exp(scipy.optimize.brentq(g, -80, 20, xtol=1e-14, rtol=1e-14))
    assert abs(kappa / ref - 1) < 1e-9
    # the defining equation holds
    assert abs(kappa - lam - kappa * np.sum(ev / (ev + kappa)) / n) < 1e-10 * max(kappa, 1e-300)
