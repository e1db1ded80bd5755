"""generalization-vs-n: the quick mode's claims hold on the recipe's own seeds 0-5, which were
not used to calibrate them (calibration: seeds 200-211 and 300-311), and the arithmetic the
recipe relies on (formerly claims: the slopes of the bounds) as unit tests."""

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from recipe_checks import check_quick_mode

from twolayer.recipes import generalization_vs_n as g


@pytest.mark.slow
def test_generalization_vs_n_quick(tmp_path):
    check_quick_mode("generalization-vs-n", tmp_path)


def test_fit_slope_recovers_a_power_law_and_its_standard_error():
    n = np.array([100.0, 200, 400, 800, 1600])
    slope, se, intercept = g.fit_slope(n, 3.0 * n**-0.7)
    assert slope == pytest.approx(-0.7, abs=1e-12)
    assert intercept == pytest.approx(math.log(3.0), abs=1e-12)
    assert se == pytest.approx(0.0, abs=1e-10)
    # known variance: equal relative errors s give 1 / sqrt(sum (x - xbar)^2 / s^2)
    values = 3.0 * n**-0.7
    _, se_known, _ = g.fit_slope(n, values, 0.1 * values, known_variance=True)
    x = np.log(n)
    assert se_known == pytest.approx(0.1 / math.sqrt(np.sum((x - x.mean()) ** 2)), rel=1e-12)


def _fake(d: int, paths: list[float]):
    data = SimpleNamespace(spec={"train": {"loss": "logistic"},
                                 "teacher": {"noise": 1.0, "mean_norm": 2.0}})
    part = pd.DataFrame({"d": [d] * len(paths), g.PATH: paths})
    return data, part


def test_fixed_radius_bound_falls_exactly_like_inverse_sqrt_n():
    # the radius P_max and rms = sqrt(d + ||mu||^2) do not depend on n: slope -1/2 exactly,
    # and at n = d + 4 = ||x||^2 the bound is 4 L P_max (L = 1 for the logistic loss)
    data, part = _fake(10, [3.0, 7.5, 5.0])
    n = np.array([100.0, 400, 1600, 6400])
    bound = g.fixed_radius_bound(data, part, n)
    assert g.fit_slope(n, bound)[0] == pytest.approx(-0.5, abs=1e-12)
    assert g.fixed_radius_bound(data, part, np.array([14]))[0] == pytest.approx(4 * 7.5)


def test_per_run_bound_slope_is_minus_half_plus_path_norm_slope():
    # bound = 4 L P rms / sqrt(n): with P ~ n^p and rms fixed, the log-log slope is p - 1/2
    n = np.array([100.0, 200, 400, 800])
    for p in (-0.3, 0.0, 0.2):
        P = 5.0 * n**p
        bound = 4 * P * math.sqrt(14) / np.sqrt(n)
        assert g.fit_slope(n, bound)[0] == pytest.approx(p - 0.5, abs=1e-12)
