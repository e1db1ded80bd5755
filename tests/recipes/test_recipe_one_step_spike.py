"""Quick mode of one-step-spike: every claim holds on the recipe's own seeds 0-1, which were
not used to calibrate the tolerances (calibration: seeds 200-215 and 300-315; d = 200,
N = 400, n = 600)."""

import pytest
from recipe_checks import check_quick_mode

from twolayer.recipes.reproduce import reproduce


@pytest.mark.slow
def test_one_step_spike_quick(tmp_path):
    result = check_quick_mode("one-step-spike", tmp_path)
    # resuming finds every run done and gives the same claims
    again = reproduce("one-step-spike", quick=True, out=tmp_path, jobs=1)
    assert [c.measured for c in again.claims] == [c.measured for c in result.claims]
