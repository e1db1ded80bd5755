"""Quick mode of one-step-spike: every claim holds (sizes d = 200, N = 400, n = 600, 2 seeds;
the tolerances are stated and justified in the recipe module)."""

import pytest

from twolayer.recipes.reproduce import reproduce


@pytest.mark.slow
def test_one_step_spike_quick(tmp_path):
    result = reproduce("one-step-spike", quick=True, out=tmp_path, jobs=1)
    table = result.table().to_string()
    assert not result.errors, result.errors
    assert result.passed, table
    assert (result.out / "report.html").exists()
    assert all(p.exists() and p.with_suffix(".pdf").exists() for p in result.figures)
    # resuming finds every run done and gives the same claims
    again = reproduce("one-step-spike", quick=True, out=tmp_path, jobs=1)
    assert [c.measured for c in again.claims] == [c.measured for c in result.claims]
