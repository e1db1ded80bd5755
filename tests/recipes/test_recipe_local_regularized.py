"""Quick mode of local-regularized: every claim holds (d = 20, m = 50, n = 400, stage 1 of 800
GD steps then 3 x 400 steps with weight decay 2e-3, 1e-3, 5e-4 or without; 2 seeds)."""

import pytest
from recipe_checks import check_quick_mode


@pytest.mark.slow
def test_local_regularized_quick(tmp_path):
    check_quick_mode("local-regularized", tmp_path, figures=2)
