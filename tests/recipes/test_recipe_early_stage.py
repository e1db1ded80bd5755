"""Quick mode of early-stage: every claim holds (XOR clusters d = 40, n = 200, N = 100,
300 steps; GD and SGD (batch 20) x square and logistic; 1 seed)."""

import pytest

from twolayer.recipes.reproduce import reproduce


@pytest.mark.slow
def test_early_stage_quick(tmp_path):
    result = reproduce("early-stage", quick=True, out=tmp_path, jobs=1)
    table = result.table().to_string()
    assert not result.errors, result.errors
    assert result.passed, table
    assert (result.out / "report.html").exists()
    assert all(p.exists() and p.with_suffix(".pdf").exists() for p in result.figures)
