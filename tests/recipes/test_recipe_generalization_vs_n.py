"""Quick mode of generalization-vs-n: every claim holds (mean-field relu network, logistic loss,
Gaussian mixture, d = 10 and 40, n = 100-1600, 6 seeds; tolerances stated in the recipe module)."""

import pytest

from twolayer.recipes.reproduce import reproduce


@pytest.mark.slow
def test_generalization_vs_n_quick(tmp_path):
    result = reproduce("generalization-vs-n", quick=True, out=tmp_path, jobs=2)
    table = result.table().to_string()
    assert not result.errors, result.errors
    assert result.passed, table
    assert (result.out / "report.html").exists()
    assert result.figures
    assert all(p.exists() and p.with_suffix(".pdf").exists() for p in result.figures)
