"""Quick mode of early-stage: every claim holds (XOR clusters d = 40, n = 200, N = 100,
300 steps; GD and SGD (batch 20) x square and logistic; 4 seeds). The claims are orderings and
an equality with 1/2 whose tolerance is 3 sem + a finite-time term measured on calibration seeds
200-211 (LOGISTIC_FINITE); the test uses the recipe's seeds 0-3, which set nothing
(docs/recipes/early-stage.md)."""

import math

import pytest
from recipe_checks import check_calibrated_quantities_are_the_claims, check_quick_mode

from twolayer.recipes.early_stage import LOGISTIC_FINITE, logistic_ratio_prediction


def test_logistic_ratio_prediction():
    # 1/2 for L ~ 1/t; the finite-time term is the gap to (1/2) log(T/2) / log T
    for steps in (300, 2000):
        expected, finite = logistic_ratio_prediction(steps)
        assert expected == 0.5
        assert finite == pytest.approx(0.5 - 0.5 * math.log(steps / 2) / math.log(steps))


def test_measured_finite_time_terms_within_the_log_correction():
    # the calibrated bias has the size the (log t) factor of Lyu & Li allows, not more
    for quick, steps in ((True, 300), (False, 2000)):
        _, log_term = logistic_ratio_prediction(steps)
        assert all(0 < term <= log_term for term in LOGISTIC_FINITE[quick].values())


@pytest.mark.slow
def test_early_stage_quick(tmp_path):
    result = check_quick_mode("early-stage", tmp_path)
    assert {c.kind for c in result.claims} == {"ordering", "equality"}
    assert all(c.source and c.derivation for c in result.claims)
    check_calibrated_quantities_are_the_claims(result, "early-stage", {
        "logistic-GD": ("logistic-one-over-t-GD", 0.5),
        "logistic-SGD": ("logistic-one-over-t-SGD", 0.5)})
