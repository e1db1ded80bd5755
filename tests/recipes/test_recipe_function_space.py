"""Quick mode of function-space: every claim holds (sizes d = 200, N = 400, n = 600, 4 seeds,
c in {0, 8, 16, 32}) on fresh seeds 1000-1003, not the calibration seeds 200-209 the tolerances
were set on (stated in the recipe module)."""

import pytest
from recipe_checks import check_quick_mode


@pytest.mark.slow
def test_function_space_quick(tmp_path):
    check_quick_mode("function-space", tmp_path, seeds=1000)
