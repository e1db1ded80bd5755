"""Quick mode of one-step-spike: every claim holds (sizes d = 200, N = 400, n = 600, 2 seeds;
the tolerances are stated and justified in the recipe module)."""

import pytest
from recipe_checks import check_quick_mode

from twolayer.recipes.reproduce import reproduce


@pytest.mark.slow
def test_one_step_spike_quick(tmp_path):
    result = check_quick_mode("one-step-spike", tmp_path)
    # resuming finds every run done and gives the same claims
    again = reproduce("one-step-spike", quick=True, out=tmp_path, jobs=1)
    assert [c.measured for c in again.claims] == [c.measured for c in result.claims]
