"""Quick mode of generalization-vs-n: every claim holds (mean-field relu network, logistic loss,
Gaussian mixture, d = 10 and 40, n = 100-1600, 6 seeds; tolerances stated in the recipe module)."""

import pytest
from recipe_checks import check_quick_mode


@pytest.mark.slow
def test_generalization_vs_n_quick(tmp_path):
    check_quick_mode("generalization-vs-n", tmp_path)
