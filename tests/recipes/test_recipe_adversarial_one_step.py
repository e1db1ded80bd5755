"""Quick mode of adversarial-one-step: every claim holds on the recipe's own networks (seeds
0-7), which were not used to calibrate the tolerances (calibration: seeds 200-215 and 300-315;
random relu and tanh networks, N = d/10 with d = 100-800 and N = 4d with d = 50-400)."""

import pytest
from recipe_checks import check_quick_mode


@pytest.mark.slow
def test_adversarial_one_step_quick(tmp_path):
    check_quick_mode("adversarial-one-step", tmp_path)
