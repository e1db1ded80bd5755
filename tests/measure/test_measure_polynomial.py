"""Hermite-degree alignment: feature matrices built from h_k(t) are assigned degree k."""

from __future__ import annotations

import numpy as np
import pytest
from measure_helpers import build_context, noise_matrix, single_index

from twolayer.activations import hermite_basis
from twolayer.measure import measure
from twolayer.measure.polynomial import hermite_degree_weights


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_weights_are_gram_schmidt_components(k: int) -> None:
    # oracle: the weight of degree k is ||P_{<=k} u||^2 - ||P_{<k} u||^2 with the projections
    # computed independently by least squares on h_0(t)..h_j(t); exact up to rounding.
    n, K = 1000, 5
    rng = np.random.default_rng(k)
    t = rng.standard_normal(n)
    H = np.stack(hermite_basis(t, K), axis=1)
    u = H[:, k] + 0.5 * rng.standard_normal(n) / np.sqrt(n) * np.linalg.norm(H[:, k])
    u /= np.linalg.norm(u)

    def proj2(j: int) -> float:
        coef, *_ = np.linalg.lstsq(H[:, : j + 1], u, rcond=None)
        return float(np.sum((H[:, : j + 1] @ coef) ** 2))

    w = hermite_degree_weights(u[:, None], t, K)[0]
    expected = [proj2(0)] + [proj2(j) - proj2(j - 1) for j in range(1, K + 1)]
    np.testing.assert_allclose(w, expected, atol=1e-10)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_weights_of_hermite_vector(k: int) -> None:
    # u = h_k(t) / ||h_k(t)||: the total projection is exactly 1 and degree k dominates. The
    # empirical overlap of h_k with lower degrees is O(n^-1/2) with a constant that grows fast
    # with k (heavy tails): measured weight on degree k at n = 4000 over 5 seeds: k <= 2 >= 0.996,
    # k = 3 >= 0.939 (k = 4 goes down to 0.79, hence not tested here), so 0.9.
    n, K = 4000, 5
    t = np.random.default_rng(k).standard_normal(n)
    h = hermite_basis(t, K)[k]
    w = hermite_degree_weights((h / np.linalg.norm(h))[:, None], t, K)[0]
    assert w.sum() == pytest.approx(1.0, abs=1e-10)
    assert int(np.argmax(w)) == k
    assert w[k] > 0.9


def test_random_vectors_have_chance_projection() -> None:
    # E ||P u||^2 = (K + 1) / n for u uniform on the sphere; 400 vectors: sd of the mean ~ 7%
    n, K = 500, 3
    rng = np.random.default_rng(0)
    t = rng.standard_normal(n)
    U = rng.standard_normal((n, 400))
    U /= np.linalg.norm(U, axis=0)
    mean = hermite_degree_weights(U, t, K).sum(axis=1).mean()
    assert mean == pytest.approx((K + 1) / n, rel=0.25)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_measurement_picks_degree_of_hermite_features(k: int) -> None:
    # every neuron w_i = beta with activation h_k: F = h_k(t) 1^T, rank one, left vector h_k(t)
    d, N = 40, 10
    teacher = single_index(d, k)
    W = np.tile(teacher.beta, (N, 1))
    ctx = build_context(teacher, W, activation={"name": "hermite", "k": k})
    out = measure("polynomial", ctx, matrix="features", n_probe=3000, degree_max=4, top_k=1)
    assert out["polynomial.dominant_degree_1"] == k
    assert out["polynomial.projection_norm_1"] > 0.99


@pytest.mark.parametrize("k", [1, 2])
def test_update_mode_isolates_the_new_feature(k: int) -> None:
    # W_0 random, W = all rows beta: F - F_0 = h_k(t) 1^T - h_k(X W_0^T); the first term has
    # norm sqrt(N) = 10 against a random bulk ~ 1 + sqrt(N/n): the top vector is degree k.
    d, N, n = 60, 100, 2000
    teacher = single_index(d, 10 + k)
    W0 = noise_matrix(N, d, 20 + k)
    W = np.tile(teacher.beta, (N, 1))
    ctx = build_context(teacher, W0, W, activation={"name": "hermite", "k": k})
    out = measure("polynomial", ctx, n_probe=n, degree_max=3, top_k=2)
    assert out["polynomial.dominant_degree_1"] == k
    assert out["polynomial.projection_norm_1"] > 0.95
    assert out["polynomial.degree_weights"].shape == (2, 4)


def test_two_spikes_carry_degrees_one_and_two() -> None:
    # sigma = 2 h_1 + h_2, half the rows beta and half -beta: F = 2 h_1(t) s^T + h_2(t) 1^T with
    # s the +-1 signs, orthogonal to 1 over neurons: two rank-one parts, the larger (factor 2)
    # carries degree 1, the other degree 2.
    d, N = 30, 20
    teacher = single_index(d, 5)
    signs = np.where(np.arange(N) % 2 == 0, 1.0, -1.0)
    W = signs[:, None] * teacher.beta[None, :]
    act = {"name": "hermite_poly", "coefficients": [0.0, 2.0, 1.0]}
    ctx = build_context(teacher, W, activation=act)
    out = measure("polynomial", ctx, matrix="features", n_probe=3000, degree_max=3, top_k=2)
    np.testing.assert_array_equal(out["polynomial.dominant_degree"], [1.0, 2.0])
    assert min(out["polynomial.projection_norm"]) > 0.99


def test_direction_update_uses_the_learned_direction() -> None:
    # Delta W = 3 u beta^T exactly: its top right singular vector is +-beta, and the degree
    # weights are sign-free (h_k(-t) = (-1)^k h_k(t)), so "update" reproduces direction 0.
    d, N = 40, 60
    teacher = single_index(d, 30)
    W0 = noise_matrix(N, d, 31)
    u = np.random.default_rng(32).standard_normal(N)
    W = W0 + 3.0 * np.outer(u / np.linalg.norm(u), teacher.beta)
    ctx = build_context(teacher, W0, W)
    by_teacher = measure("polynomial", ctx, n_probe=500, direction=0)
    by_update = measure("polynomial", ctx, n_probe=500, direction="update")
    np.testing.assert_allclose(
        by_update["polynomial.degree_weights"], by_teacher["polynomial.degree_weights"], atol=1e-9
    )
