"""Quick mode of the two-step recipe: every claim holds, the report and figures exist; and the
merged-spike helper against a direct rank-one computation."""

import math

import numpy as np
import pytest
from recipe_checks import check_quick_mode

from twolayer.recipes.two_step import combined_spike


@pytest.mark.slow
def test_two_step_quick(tmp_path):
    check_quick_mode("two-step", tmp_path)


def test_combined_spike_is_norm_of_merged_rank_one():
    """mu_1 ||a|| ||eta_1 u_1 + eta_2 u_2|| with the limits of ||u_k||^2 and <u_1, u_2>: one step
    (eta_2 = 0) gives the one-step spike; a reused batch (u_2 = u_1) adds the step sizes."""
    kw = dict(N=400, n=800, d=200, mu1=0.5, c1=0.6, y2=0.8, a_norm=1.0)
    U = math.sqrt(0.6**2 + 0.8 * 200 / 800)
    one = combined_spike((2.0, 0.0), (0.1, 0.2), **kw)
    assert one == pytest.approx(0.5 * 2.0 * 400**0.1 * U)
    e1, e2 = 2.0 * 400**0.1, 3.0 * 400**0.2
    reuse = combined_spike((2.0, 3.0), (0.1, 0.2), reuse=True, **kw)
    assert reuse == pytest.approx(0.5 * (e1 + e2) * U)
    fresh = combined_spike((2.0, 3.0), (0.1, 0.2), **kw)
    assert fresh == pytest.approx(0.5 * np.sqrt(e1**2 * U**2 + e2**2 * U**2 + 2 * e1 * e2 * 0.36))
