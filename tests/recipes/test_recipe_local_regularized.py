"""Quick mode of local-regularized: every claim holds (d = 20, m = 50, n = 400, stage 1 of 800
GD steps then 5 x 400 steps with weight decay 2e-3, 1e-3, 5e-4, 2.5e-4, 1.25e-4 or without;
4 seeds). The signed-mass equality is a full-mode claim (its finite-size terms were measured on
the full-mode calibration seeds 200-208): the quick mode is too short for the mass to reach
a*_i, so there it is an observation. The test runs the recipe's own seeds 0-3."""

import pytest
from recipe_checks import check_quick_mode


@pytest.mark.slow
def test_local_regularized_quick(tmp_path):
    result = check_quick_mode("local-regularized", tmp_path, figures=2)
    assert all(c.source and c.derivation for c in result.claims)
    assert "mass-recovers-teacher-weights" not in {c.id for c in result.claims}
