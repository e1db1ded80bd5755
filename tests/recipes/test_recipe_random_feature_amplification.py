"""Quick mode of random-feature-amplification: every claim holds (d = 800, n = 100, m = 40,
60 GD steps, p in {0.05, 0.15, 0.3}, random and adversarial flips, 4 seeds). The finite-size
terms of the tolerances were measured on the calibration seeds 200-211 (|bias| + 2 SE); the test
runs the recipe's own seeds 0-3, which were not used for that."""

import math

import numpy as np
import pytest
import scipy.special
from recipe_checks import check_calibrated_quantities_are_the_claims, check_quick_mode

from twolayer.recipes import RECIPES
from twolayer.recipes.random_feature_amplification import (
    EXCESS_FINITE,
    MEDIAN_MAX_ABS2,
    P_MODERATE,
    P,
    init_median_cos,
    median_relative_se,
)


def test_median_of_max_abs_and_its_standard_error():
    # (2 Phi(t) - 1)^2 = 1/2 at the median; the standard error of a sample median against a
    # Monte Carlo of 2000 medians of 160 draws (the SE of that SE estimate is ~1.6%; 5%)
    t = MEDIAN_MAX_ABS2
    assert (2 * scipy.special.ndtr(t) - 1) ** 2 == pytest.approx(0.5, abs=1e-12)
    assert init_median_cos(800) == pytest.approx(t / math.sqrt(800))
    rng = np.random.default_rng(0)
    z = np.abs(rng.standard_normal((2000, 160, 2))).max(axis=2)
    medians = np.median(z, axis=1)
    assert medians.std(ddof=1) / t == pytest.approx(median_relative_se(160), rel=0.05)


@pytest.mark.slow
def test_random_feature_amplification_quick(tmp_path):
    result = check_quick_mode("random-feature-amplification", tmp_path, figures=2)
    assert all(c.source and c.derivation for c in result.claims)
    check_calibrated_quantities_are_the_claims(result, "random-feature-amplification", {
        "linear": ("linear-at-one-half", 0.5)})


def test_each_moderate_noise_rate_of_both_grids_has_its_own_calibrated_term():
    # excess_finite falls back to the largest term for a rate it was not calibrated at; the
    # recipe's own grids must never need that fallback
    for quick in (True, False):
        spec = RECIPES.get("random-feature-amplification").spec(quick=quick)
        rates = {round(float(p), 6) for p in spec["sweep"][P] if p <= P_MODERATE}
        assert rates == set(EXCESS_FINITE[quick])
