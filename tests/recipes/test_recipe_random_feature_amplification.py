"""Quick mode of random-feature-amplification: every claim holds (d = 800, n = 100, m = 40,
60 GD steps, p in {0.05, 0.15, 0.3}, random and adversarial flips, 2 seeds; the tolerances are
stated and justified in the recipe module)."""

import pytest

from twolayer.recipes.reproduce import reproduce


@pytest.mark.slow
def test_random_feature_amplification_quick(tmp_path):
    result = reproduce("random-feature-amplification", quick=True, out=tmp_path, jobs=1)
    table = result.table().to_string()
    assert not result.errors, result.errors
    assert result.passed, table
    assert (result.out / "report.html").exists()
    assert len(result.figures) == 2
    assert all(p.exists() and p.with_suffix(".pdf").exists() for p in result.figures)
