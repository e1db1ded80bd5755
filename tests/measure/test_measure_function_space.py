"""function_space measurement: the spiked fit is exact on its own model, a network whose weights
ARE spiked Gaussian sits at the finite-width floor, and an untrained network gives equal kernels."""

from __future__ import annotations

import numpy as np
import pytest
from measure_helpers import build_context, single_index

from twolayer.measure import measure
from twolayer.measure.function_space import gaussian_weights, spiked_covariance_fit, target_block


def test_spiked_fit_recovers_covariance() -> None:
    # rows drawn from s^2 (I - v v^T) + tau^2 v v^T: the moment fit is within sampling error
    # (4000 rows: relative sd of tau^2 ~ sqrt(2/4000) = 2%; of s^2 much smaller)
    d, m = 50, 4000
    rng = np.random.default_rng(0)
    v = rng.standard_normal(d)
    v /= np.linalg.norm(v)
    W = gaussian_weights(rng.standard_normal((m, d)), 0.02, 0.5, v)
    s2, tau2 = spiked_covariance_fit(W, v)
    assert s2 == pytest.approx(0.02, rel=0.03)
    assert tau2 == pytest.approx(0.5, rel=0.08)


def test_target_block_is_symmetric_psd() -> None:
    rng = np.random.default_rng(1)
    F = rng.standard_normal((200, 50))
    M = target_block(F @ F.T, rng.standard_normal(200), 3)
    assert M.shape == (3, 3)
    np.testing.assert_allclose(M, M.T, atol=1e-12)
    assert np.linalg.eigvalsh(M).min() > -1e-12


def test_untrained_network_and_spiked_gaussian_network() -> None:
    d, N = 100, 400
    teacher = single_index(d, 2)
    rng = np.random.default_rng(3)
    W0 = rng.standard_normal((N, d)) / np.sqrt(d)
    out = measure("function_space", build_context(teacher, W0), n_probe=300)
    assert out["function_space.dist_init"] == 0.0
    assert out["function_space.rq_target1"] == out["function_space.rq_target1_init"]
    # a "trained" W = W_0 + g beta^T, g ~ N(0, 0.3): rows spiked Gaussian along beta, Delta W of
    # rank one. The surrogate matches it to the finite-width level (the floor of the isotropic
    # init; factor 2 for the fluctuation of two N = 400 kernels), a spike-free surrogate does not
    beta = teacher.beta / np.linalg.norm(teacher.beta)
    W = W0 + np.outer(np.sqrt(0.3) * rng.standard_normal(N), beta)
    out = measure("function_space", build_context(teacher, W0, W), n_probe=300)
    assert out["function_space.spike_overlap"] == pytest.approx(1.0)
    assert out["function_space.spike_var"] == pytest.approx(0.3 + 1.0 / d, rel=0.2)  # sd 7%
    assert out["function_space.dist_spiked"] < 2 * out["function_space.dist_floor"]
    assert out["function_space.dist_isotropic"] > 3 * out["function_space.dist_spiked"]
    assert out["function_space.rq_target1"] > 3 * out["function_space.rq_target1_init"]
