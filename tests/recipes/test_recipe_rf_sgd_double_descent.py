"""Quick mode of rf-sgd-double-descent: every claim holds (d = 50, n = 100, N/n from 0.25 to 4,
3000 SGD steps, 2 seeds; the tolerances are stated and justified in the recipe module)."""

import pytest

from twolayer.recipes.reproduce import reproduce


@pytest.mark.slow
def test_rf_sgd_double_descent_quick(tmp_path):
    result = reproduce("rf-sgd-double-descent", quick=True, out=tmp_path, jobs=2)
    table = result.table().to_string()
    assert not result.errors, result.errors
    assert result.passed, table
    assert (result.out / "report.html").exists()
    assert result.figures
    assert all(p.exists() and p.with_suffix(".pdf").exists() for p in result.figures)
