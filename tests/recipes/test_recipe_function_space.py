"""Quick mode of function-space: every claim holds (sizes d = 200, N = 400, n = 600, 2 seeds,
c in {0, 8, 16, 32}; the tolerances are stated and justified in the recipe module)."""

import pytest

from twolayer.recipes.reproduce import reproduce


@pytest.mark.slow
def test_function_space_quick(tmp_path):
    result = reproduce("function-space", quick=True, out=tmp_path, jobs=1)
    table = result.table().to_string()
    assert not result.errors, result.errors
    assert result.passed, table
    assert (result.out / "report.html").exists()
    assert all(p.exists() and p.with_suffix(".pdf").exists() for p in result.figures)
