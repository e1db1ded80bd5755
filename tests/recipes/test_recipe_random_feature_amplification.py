"""Quick mode of random-feature-amplification: every claim holds (d = 800, n = 100, m = 40,
60 GD steps, p in {0.05, 0.15, 0.3}, random and adversarial flips, 2 seeds; the tolerances are
stated and justified in the recipe module)."""

import pytest
from recipe_checks import check_quick_mode


@pytest.mark.slow
def test_random_feature_amplification_quick(tmp_path):
    check_quick_mode("random-feature-amplification", tmp_path, figures=2)
