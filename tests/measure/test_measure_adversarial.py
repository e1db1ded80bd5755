"""One-step adversarial perturbations: analytic input gradient, minimality, Bubeck scaling."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from measure_helpers import build_context, noise_matrix, single_index

from twolayer.activations import get_activation
from twolayer.measure import measure
from twolayer.measure.adversarial import input_gradient, line_setup, smallest_flip, sphere_points
from twolayer.student import TwoLayer, init_student


@pytest.mark.parametrize("activation", ["tanh", "erf", "softplus"])
@pytest.mark.parametrize("scaling", ["standard", "mean_field"])
def test_input_gradient_matches_finite_differences(activation: str, scaling: str) -> None:
    # central differences with h = 1e-5 on smooth activations: error O(h^2) ~ 1e-10 relative
    d, N = 12, 25
    rng = np.random.default_rng(0)
    s = TwoLayer(noise_matrix(N, d, 1), rng.standard_normal(N), get_activation(activation), scaling)
    X = rng.standard_normal((4, d))
    G = input_gradient(s, X)
    h = 1e-5
    fd = np.zeros_like(X)
    for j in range(d):
        e = np.zeros(d)
        e[j] = h
        fd[:, j] = (s.forward(X + e) - s.forward(X - e)) / (2 * h)
    np.testing.assert_allclose(G, fd, rtol=1e-7, atol=1e-9)


def test_smallest_flip_is_a_flip_and_minimal() -> None:
    d, N = 50, 200
    rng = np.random.default_rng(2)
    s = init_student(N, d, get_activation("tanh"), rng, a_init="pm1")
    X = sphere_points(30, d, rng)
    res = smallest_flip(s, X, eta_max=3.0, n_grid=64, bisection_steps=40)
    line = line_setup(s, X)
    flipped = ~np.isnan(res["eta"])
    assert flipped.mean() > 0.9
    for i in np.nonzero(flipped)[0]:
        x = X[i]
        step = line["dz"][i]  # W delta(1)
        eta = res["eta"][i]
        f_at = s.scale * np.tanh(line["z0"][i] + eta * step) @ s.a
        assert np.sign(f_at) != np.sign(res["f"][i])
        # no flip anywhere on a fine grid below eta (up to the bisection resolution)
        below = np.linspace(0, eta * (1 - 1e-6), 400)
        f_below = s.scale * np.tanh(line["z0"][i] + below[:, None] * step) @ s.a
        assert np.all(np.sign(f_below) == np.sign(res["f"][i]))
        # and delta(1) W^T really is the projection of -f grad / ||grad||^2
        g = input_gradient(s, x[None, :])[0]
        np.testing.assert_allclose(step, (-res["f"][i] * g / (g @ g)) @ s.W.T, rtol=1e-10)


def _bubeck(d: int, N: int, seed: int) -> dict:
    # THEORY-NOTES scaling: f = (1/sqrt N) sum a_l relu(<w_l, x>), w_l ~ N(0, I/d), a_l = +-1,
    # here balanced (sum a_l = 0): with independent signs f has a network-dependent offset
    # mu_0 sum a_l / sqrt(N) ~ 0.4 N(0, 1) that changes the typical |f(x)| from seed to seed.
    teacher = single_index(d, seed)
    rng = np.random.default_rng(seed)
    s = init_student(N, d, get_activation("relu"), rng, a_init="balanced")
    ctx = build_context(teacher, s.W, a=s.a, a0=s.a, seed=seed)
    return measure("adversarial", ctx, n_points=200, eta_max=2.0, network="init")


def test_factor_two_flips_almost_all_and_ratio_scales_like_inverse_sqrt_d() -> None:
    # THEORY-NOTES (d = 1000, N = 4000): eta = 2 flips all points, ||delta|| / ||x|| ~ 1.3/sqrt(d).
    # Here d = 250 and 1000 with N = 2 d, 200 points: flip rate >= 0.97 (a point missed by
    # 3% would mean the factor-2 rule fails), and the median ratio times sqrt(d) agrees between
    # the two d within 25% (the median over 200 points has ~10% relative error each).
    small, large = _bubeck(250, 500, 0), _bubeck(1000, 2000, 1)
    for out in (small, large):
        assert out["adversarial.success_rate"] >= 0.97
        assert out["adversarial.flip_rate_eta2"] >= 0.97
        assert out["adversarial.flip_rate_eta1"] < out["adversarial.flip_rate_eta2"]
        # closed form: with balanced a (sum a_l = 0) the constant mu_0 = 1/sqrt(2 pi) of relu
        # cancels, so f(x) ~ N(0, E relu(G)^2 - mu_0^2 = 1/2 - 1/(2 pi)), ||grad f|| ->
        # sqrt(E relu'(G)^2) = sqrt(1/2), and the flipping eta is ~ 1: the median of
        # ||delta|| sqrt(d) / ||x|| = |f| / ||grad f|| is Phi^-1(3/4) sqrt(1 - 1/pi) = 0.557.
        # Tolerance (relative): 3 standard errors of a sample median of 200 points,
        # 1 / (2 * 2 phi(0.6745) * 0.6745 * sqrt(200)) = 0.0825 each, plus 0.06 for the median
        # flipping eta (1.00-1.06, docs/recipes/adversarial-one-step.md).
        se = 1.0 / (2 * 2 * NormalDist().pdf(0.6745) * 0.6745 * math.sqrt(200))
        assert out["adversarial.median_ratio_sqrt_d"] == pytest.approx(
            NormalDist().inv_cdf(0.75) * math.sqrt(1 - 1 / math.pi), rel=3 * se + 0.06)
    ratio = small["adversarial.median_ratio"] / large["adversarial.median_ratio"]
    assert ratio == pytest.approx(math.sqrt(1000 / 250), rel=0.25)
