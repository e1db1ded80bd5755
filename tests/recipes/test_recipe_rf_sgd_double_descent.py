"""Quick mode of rf-sgd-double-descent: every claim holds on the recipe's own seeds 0-1, which
were not used to calibrate the tolerances (calibration: seeds 200-215 and 300-315; d = 50,
n = 100, N/n from 0.25 to 4, 3000 SGD steps)."""

import pytest
from recipe_checks import check_quick_mode


@pytest.mark.slow
def test_rf_sgd_double_descent_quick(tmp_path):
    check_quick_mode("rf-sgd-double-descent", tmp_path)
