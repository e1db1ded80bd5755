"""Quick mode of rf-sgd-double-descent: every claim holds (d = 50, n = 100, N/n from 0.25 to 4,
3000 SGD steps, 2 seeds; the tolerances are stated and justified in the recipe module)."""

import pytest
from recipe_checks import check_quick_mode


@pytest.mark.slow
def test_rf_sgd_double_descent_quick(tmp_path):
    check_quick_mode("rf-sgd-double-descent", tmp_path)
