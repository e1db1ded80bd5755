"""Quick mode of adversarial-one-step: every claim holds (random relu and tanh networks,
undercomplete N = d/10 with d = 100-800 and overcomplete N = 4d with d = 50-400, 8 seeds,
100 points per network; tolerances stated and justified in the recipe module)."""

import pytest

from twolayer.recipes.reproduce import reproduce


@pytest.mark.slow
def test_adversarial_one_step_quick(tmp_path):
    result = reproduce("adversarial-one-step", quick=True, out=tmp_path, jobs=2)
    table = result.table().to_string()
    assert not result.errors, result.errors
    assert result.passed, table
    assert (result.out / "report.html").exists()
    assert result.figures
    assert all(p.exists() and p.with_suffix(".pdf").exists() for p in result.figures)
