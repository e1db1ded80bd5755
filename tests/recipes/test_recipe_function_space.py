"""Quick mode of function-space: every claim holds (sizes d = 200, N = 400, n = 600, 2 seeds,
c in {0, 8, 16, 32}; the tolerances are stated and justified in the recipe module)."""

import pytest
from recipe_checks import check_quick_mode


@pytest.mark.slow
def test_function_space_quick(tmp_path):
    check_quick_mode("function-space", tmp_path)
