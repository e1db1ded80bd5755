"""Quick mode of local-regularized: every claim holds (d = 20, m = 50, n = 400, stage 1 of 800
GD steps then 3 x 400 steps with weight decay 2e-3, 1e-3, 5e-4 or without; 2 seeds)."""

import pytest

from twolayer.recipes.reproduce import reproduce


@pytest.mark.slow
def test_local_regularized_quick(tmp_path):
    result = reproduce("local-regularized", quick=True, out=tmp_path, jobs=1)
    table = result.table().to_string()
    assert not result.errors, result.errors
    assert result.passed, table
    assert (result.out / "report.html").exists()
    assert len(result.figures) == 2
    assert all(p.exists() and p.with_suffix(".pdf").exists() for p in result.figures)
