"""Quick mode of early-stage: every claim holds (XOR clusters d = 40, n = 200, N = 100,
300 steps; GD and SGD (batch 20) x square and logistic; 1 seed)."""

import pytest
from recipe_checks import check_quick_mode


@pytest.mark.slow
def test_early_stage_quick(tmp_path):
    check_quick_mode("early-stage", tmp_path)
