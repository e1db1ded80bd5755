"""BBP transition for additive finite-rank spikes, against simulated spiked matrices."""

import math

import numpy as np
import pytest

from twolayer.theory.marchenko_pastur import mp_singular_value_edge, tracy_widom_scale
from twolayer.theory.spiked import (
    bbp_outlier_singular_value,
    bbp_overlaps,
    bbp_spectrum,
    bbp_threshold,
)


@pytest.mark.parametrize("c", [0.3, 1.0, 2.0])
def test_transition_is_continuous(c):
    # Exact: at theta = c^(1/4) the outlier meets the edge 1 + sqrt c and both overlaps vanish;
    # the outlier location increases with theta; large theta gives s ~ theta and overlaps -> 1.
    th = bbp_threshold(c)
    assert float(bbp_outlier_singular_value(th * (1 + 1e-9), c)) == pytest.approx(
        1 + math.sqrt(c), abs=1e-6)
    left, right = bbp_overlaps(th * (1 + 1e-9), c)
    assert abs(left) < 1e-6 and abs(right) < 1e-6
    grid = np.linspace(th, 10 * th, 50)
    assert np.all(np.diff(bbp_outlier_singular_value(grid, c)) > 0)
    big = 1e4
    assert float(bbp_outlier_singular_value(big, c)) == pytest.approx(big, rel=1e-6)
    left, right = bbp_overlaps(big, c)
    assert left > 1 - 1e-6 and right > 1 - 1e-6
    # scale: noise of variance scale/d is the scale-1 problem rescaled by sqrt(scale)
    assert float(bbp_outlier_singular_value(3.0, c, scale=4.0)) == pytest.approx(
        2 * float(bbp_outlier_singular_value(1.5, c)))


def test_rank_three_spike_above_and_below_threshold():
    # N = 1000, d = 2000 (c = 1/2, threshold 0.841), W iid N(0, 1/d), seed 0, planted
    # theta = (3, 1.5, 0.5) with orthonormal random u_k, v_k. Over 6 seeds the outliers had
    # std 0.019 and 0.013 and the squared overlaps std <= 0.006 (fluctuations O(N^-1/2)); the
    # tolerances (0.06 on singular values, 0.03 on overlaps) are about 3-5 standard deviations.
    # The sub-threshold spike leaves the third singular value at the bulk edge (within 6 TW
    # scales) and its singular vectors delocalised (overlap O(1/N); bound 0.02).
    N, d = 1000, 2000
    thetas = np.array([3.0, 1.5, 0.5])
    rng = np.random.default_rng(0)
    W = rng.standard_normal((N, d)) / math.sqrt(d)
    U, _ = np.linalg.qr(rng.standard_normal((N, 3)))
    V, _ = np.linalg.qr(rng.standard_normal((d, 3)))
    M = W + (U * thetas) @ V.T
    ev, left_vecs = np.linalg.eigh(M @ M.T)
    s = np.sqrt(ev[::-1][:3])
    left_vecs = left_vecs[:, ::-1][:, :3]
    right_vecs = (M.T @ left_vecs) / s
    left = (np.sum(U * left_vecs, axis=0)) ** 2
    right = (np.sum(V * right_vecs, axis=0)) ** 2

    pred = bbp_spectrum(thetas, N / d)
    assert pred.n_outliers == 2
    assert list(pred.detected) == [True, True, False]
    np.testing.assert_allclose(s[:2], pred.singular_values[:2], atol=0.06)
    np.testing.assert_allclose(left[:2], pred.left_overlap[:2], atol=0.03)
    np.testing.assert_allclose(right[:2], pred.right_overlap[:2], atol=0.03)
    edge = mp_singular_value_edge(N, d)
    assert pred.bulk_edge == pytest.approx(edge)
    assert abs(s[2] - edge) < 6 * tracy_widom_scale(N, d)
    assert left[2] < 0.02 and right[2] < 0.02
