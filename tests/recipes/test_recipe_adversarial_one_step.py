"""Quick mode of adversarial-one-step: every claim holds (random relu and tanh networks,
undercomplete N = d/10 with d = 100-800 and overcomplete N = 4d with d = 50-400, 8 seeds,
100 points per network; tolerances stated and justified in the recipe module)."""

import pytest
from recipe_checks import check_quick_mode


@pytest.mark.slow
def test_adversarial_one_step_quick(tmp_path):
    check_quick_mode("adversarial-one-step", tmp_path)
