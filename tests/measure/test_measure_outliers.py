"""Outlier counting: no false outliers on pure noise at the recipe sizes, planted BBP spikes found.

Sizes N, d in 500–3000 as the recipes use. The threshold is the MP edge of W_0's bulk plus
6 Tracy–Widom scales (outliers.DEFAULT_MARGIN); in those units the top singular value of pure
noise is TW_1 (mean -1.21, sd 1.27), so a false outlier here would be a > 5 sd event: a failure
means the edge, the scale or the variance estimate is wrong, not bad luck.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from measure_helpers import build_context, noise_matrix, single_index, unit

from twolayer.measure import measure
from twolayer.theory.marchenko_pastur import mp_singular_value_edge
from twolayer.theory.spiked import bbp_outlier_singular_value, bbp_threshold

NOISE_CASES = [
    (500, 500, 0),
    (500, 500, 1),
    (500, 500, 2),
    (500, 1000, 3),
    (1000, 500, 4),
    (500, 3000, 5),
    (3000, 500, 6),
    (1000, 1000, 7),
]


@pytest.mark.parametrize(("N", "d", "seed"), NOISE_CASES)
def test_no_false_outliers_on_pure_noise(N: int, d: int, seed: int) -> None:
    # W_0 and an independent noise matrix of the same variance as the "trained" W
    W0 = noise_matrix(N, d, seed)
    W = noise_matrix(N, d, seed + 100)
    ctx = build_context(single_index(d), W0, W)
    out = measure("outliers", ctx, features_outliers=False, max_outliers=5)
    assert out["outliers.W_count"] == 0
    assert out["outliers.W_positions"].shape == (0,)
    # (the edge uses the variance estimated from W_0: relative error ~ 1/sqrt(2 N d) <= 1.4e-3)
    # the top singular value sits at the MP edge, on the Tracy–Widom scale (|TW_1| < 6 here)
    assert abs(out["outliers.W_top_excess"]) < 6
    assert out["outliers.W_edge"] == pytest.approx(mp_singular_value_edge(N, d), rel=5e-3)


def test_no_false_outliers_sphere_rows_and_w_scale() -> None:
    # rows exactly on a sphere of radius 0.3: the variance estimate picks up w_scale^2 / d
    N, d = 1000, 800
    rng = np.random.default_rng(11)
    W0 = rng.standard_normal((N, d))
    W0 *= 0.3 / np.linalg.norm(W0, axis=1, keepdims=True)
    W = rng.standard_normal((N, d))
    W *= 0.3 / np.linalg.norm(W, axis=1, keepdims=True)
    out = measure("outliers", build_context(single_index(d), W0, W), features_outliers=False)
    assert out["outliers.W_count"] == 0
    assert out["outliers.W_edge"] == pytest.approx(0.3 * (1 + math.sqrt(N / d)), rel=1e-3)


@pytest.mark.parametrize("theta", [1.5, 3.0])
def test_planted_spike_counted_once_at_bbp_location(theta: float) -> None:
    # THEORY-NOTES "checked" case N = 1000, d = 2000: s_1 = 2.026 (pred 1.993) at theta = 1.5,
    # 3.270 (3.249) at theta = 3; the finite-size offset is ~1.7%, so 4% relative tolerance.
    N, d = 1000, 2000
    c = N / d
    assert theta > bbp_threshold(c)
    rng = np.random.default_rng(21)
    u, v = unit(rng.standard_normal(N)), unit(rng.standard_normal(d))
    W0 = noise_matrix(N, d, 22)
    ctx = build_context(single_index(d), W0, W0 + theta * np.outer(u, v))
    out = measure("outliers", ctx, features_outliers=False)
    assert out["outliers.W_count"] == 1
    predicted = float(bbp_outlier_singular_value(theta, c))
    assert out["outliers.W_positions"][0] == pytest.approx(predicted, rel=0.04)


def test_spike_below_threshold_is_not_an_outlier() -> None:
    # half the BBP threshold: the top singular value stays at the bulk edge
    N, d = 1000, 2000
    theta = 0.5 * bbp_threshold(N / d)
    rng = np.random.default_rng(31)
    W0 = noise_matrix(N, d, 32)
    W = W0 + theta * np.outer(unit(rng.standard_normal(N)), unit(rng.standard_normal(d)))
    out = measure("outliers", build_context(single_index(d), W0, W), features_outliers=False)
    assert out["outliers.W_count"] == 0


def test_two_planted_spikes_counted_in_order() -> None:
    N, d = 800, 800
    rng = np.random.default_rng(41)
    Q_left, _ = np.linalg.qr(rng.standard_normal((N, 2)))
    Q_right, _ = np.linalg.qr(rng.standard_normal((d, 2)))
    thetas = np.array([4.0, 2.0])
    W0 = noise_matrix(N, d, 42)
    W = W0 + (Q_left * thetas) @ Q_right.T
    out = measure("outliers", build_context(single_index(d), W0, W), features_outliers=False)
    assert out["outliers.W_count"] == 2
    np.testing.assert_allclose(
        out["outliers.W_positions"], bbp_outlier_singular_value(thetas, 1.0), rtol=0.04
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_feature_outliers_pure_noise_and_spike(seed: int) -> None:
    # F of an independent random W has no outlier over centred F_0 (the empirical edge plus
    # 6 TW scales); a strong rank-one update of W (theta = 3 along beta) creates at least one.
    N, d, n = 500, 500, 500
    teacher = single_index(d, seed)
    W0 = noise_matrix(N, d, seed + 10)
    noise = measure(
        "outliers", build_context(teacher, W0, noise_matrix(N, d, seed + 20)), n_probe=n
    )
    assert noise["outliers.F_count"] == 0
    u = unit(np.random.default_rng(seed + 30).standard_normal(N))
    W = W0 + 3.0 * np.outer(u, teacher.directions[0])
    spiked = measure("outliers", build_context(teacher, W0, W), n_probe=n)
    assert spiked["outliers.W_count"] == 1
    assert spiked["outliers.F_count"] >= 1


@pytest.mark.parametrize(("N", "d"), [(200, 200), (1500, 1300)])  # Gram path; Lanczos path
def test_outliers_count_is_never_truncated(N, d) -> None:
    # The whole bulk of W = 1.3 W_0 lies above W_0's edge + margin except its lower part: the
    # first pass (max_outliers = 3: 4 values) is all outliers, so more values are computed until
    # the count is complete; it must equal the count from the full spectrum.
    W0 = noise_matrix(N, d, 51)
    W = 1.3 * W0
    ctx = build_context(single_index(d), W0, W)
    out = measure("outliers", ctx, features_outliers=False, max_outliers=3)
    s = np.linalg.svd(W, compute_uv=False)
    expected = int(np.sum(s > out["outliers.W_threshold"]))
    assert expected > 4
    assert out["outliers.W_count"] == expected
    np.testing.assert_allclose(out["outliers.W_positions"], s[:expected], rtol=1e-9)
    # against its own bulk the same matrix has none, whatever the first pass
    trained = measure("outliers", ctx, features_outliers=False, max_outliers=3, bulk="trained")
    assert trained["outliers.W_count"] == 0


def test_trained_bulk_grown_noise_has_no_outliers_but_init_bulk_counts_them() -> None:
    # W = 1.05 W_0-like noise (the whole bulk grew by 5%, as after a large step) plus a spike:
    # against W_0's edge the grown bulk's top singular values are "outliers" (the default's
    # definition); against W's own bulk only the planted spike is, at its BBP location for the
    # grown scale (theta / 1.05 in units of the new bulk), within the 4% of the tests above.
    N, d, grow, theta = 1000, 1000, 1.05, 3.0
    rng = np.random.default_rng(61)
    W0 = noise_matrix(N, d, 62)
    u, v = unit(rng.standard_normal(N)), unit(rng.standard_normal(d))
    W = grow * noise_matrix(N, d, 63) + theta * np.outer(u, v)
    ctx = build_context(single_index(d), W0, W)
    init = measure("outliers", ctx, features_outliers=False, max_outliers=40)
    assert init["outliers.W_count"] > 1
    own = measure("outliers", ctx, features_outliers=False, bulk="trained")
    assert own["outliers.W_count"] == 1
    # the variance without the spike is grow^2 / d up to ~1/sqrt(N d) sampling error
    assert own["outliers.W_variance"] == pytest.approx(grow**2 / d, rel=5e-3)
    predicted = grow * float(bbp_outlier_singular_value(theta / grow, N / d))
    assert own["outliers.W_positions"][0] == pytest.approx(predicted, rel=0.04)


@pytest.mark.parametrize(("N", "d", "seed"), NOISE_CASES[:4])
def test_trained_bulk_no_false_outliers_on_pure_noise(N: int, d: int, seed: int) -> None:
    W = noise_matrix(N, d, seed + 200, variance=2.0 / d)
    ctx = build_context(single_index(d), noise_matrix(N, d, seed), W)
    out = measure("outliers", ctx, features_outliers=False, bulk="trained", max_outliers=5)
    assert out["outliers.W_count"] == 0


def test_outliers_bulk_options_validated() -> None:
    W0 = noise_matrix(50, 40, 71)
    ctx = build_context(single_index(40), W0, W0)
    with pytest.raises(ValueError, match="bulk must be"):
        measure("outliers", ctx, features_outliers=False, bulk="grown")
    with pytest.raises(ValueError, match="not both"):
        measure("outliers", ctx, features_outliers=False, bulk="trained", variance=0.1)
