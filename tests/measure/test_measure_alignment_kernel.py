"""Neuron alignment and kernels: exact oracles, Jacobian NTK, PSD, invariances."""

from __future__ import annotations

import numpy as np
import pytest
from measure_helpers import build_context, noise_matrix, single_index

from twolayer.losses import get_loss
from twolayer.measure import measure
from twolayer.measure.alignment import projection_ratio
from twolayer.measure.kernel import kernel_target_alignment, ntk_gram
from twolayer.teachers import get_teacher


def test_projection_ratio_oracles() -> None:
    d = 400
    B = get_teacher("multi_index", d=d, rng=np.random.default_rng(0), r=2).directions
    rng = np.random.default_rng(1)
    inside = rng.standard_normal((5, 2)) @ B
    outside = rng.standard_normal((5, d))
    outside -= (outside @ B.T) @ B
    np.testing.assert_allclose(projection_ratio(inside, B), 1.0, atol=1e-12)
    np.testing.assert_allclose(projection_ratio(outside, B), 0.0, atol=1e-12)
    # random neurons: E ||P w||^2 / ||w||^2 = r / d exactly; 2000 neurons, sd of the mean ~3%
    W = rng.standard_normal((2000, d))
    assert np.mean(projection_ratio(W, B) ** 2) == pytest.approx(2 / d, rel=0.1)


def test_neuron_alignment_summaries() -> None:
    d, N = 100, 50
    teacher = single_index(d, 2)
    W0 = noise_matrix(N, d, 3)
    W = W0.copy()
    W[:20] = teacher.beta * np.linspace(-2, 2, 20)[:, None] + 1e-3 * W0[:20]  # 20 aligned
    out = measure("neuron_alignment", build_context(teacher, W0, W), thresholds=[0.5, 0.99])
    assert out["neuron_alignment.proj_frac_above_99"] == pytest.approx(20 / N)
    assert out["neuron_alignment.init_proj_frac_above_50"] == 0.0  # ~ 1/sqrt(d) = 0.1 each
    assert out["neuron_alignment.proj_q90"] > 0.99
    assert out["neuron_alignment.init_proj_q50"] < 0.3


def test_neuron_alignment_xor_cosines_and_permutation() -> None:
    d, N = 60, 40
    teacher = get_teacher("xor", d=d, rng=np.random.default_rng(4), mu_norm=3.0)
    signs = np.where(np.arange(N) % 2 == 0, 1.0, -1.0)
    W = signs[:, None] * np.repeat(teacher.mu, N // 2, axis=0) * 0.1  # +-mu_1, +-mu_2 rows
    W0 = noise_matrix(N, d, 5)
    out = measure("neuron_alignment", build_context(teacher, W0, W), per_neuron=True)
    assert out["neuron_alignment.cos_q10"] == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(np.abs(out["neuron_alignment.cos"]).max(axis=1), 1.0)
    perm = np.random.default_rng(6).permutation(N)
    outp = measure("neuron_alignment", build_context(teacher, W0[perm], W[perm]))
    for key, value in outp.items():
        assert value == pytest.approx(out[key], abs=1e-12), key


def _jacobian_ntk(student, X) -> np.ndarray:
    # oracle: per-sample parameter gradients from the core's analytic gradients. With the square
    # loss and y = f(x) - 1 the residual is 1, so grad of the loss = grad_theta f(x).
    rows = []
    for i in range(X.shape[0]):
        xi = X[i : i + 1]
        gW, ga = student.gradients(xi, student.forward(xi) - 1.0, get_loss("square"))
        rows.append(np.concatenate([gW.ravel(), ga]))
    J = np.array(rows)
    return J @ J.T


@pytest.mark.parametrize("scaling", ["standard", "mean_field"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_ntk_gram_equals_jacobian_gram(scaling: str, activation: str) -> None:
    d, N, n = 8, 15, 12
    W = noise_matrix(N, d, 7)
    ctx = build_context(single_index(d), W, activation=activation, scaling=scaling)
    X = np.random.default_rng(8).standard_normal((n, d))
    np.testing.assert_allclose(
        ntk_gram(ctx.student, X), _jacobian_ntk(ctx.student, X), rtol=1e-10, atol=1e-13
    )


def test_kernel_measurement_psd_alignment_and_invariance() -> None:
    d, N, n = 30, 60, 80
    teacher = single_index(d, 9, link="relu")
    W0 = noise_matrix(N, d, 10)
    W = W0 + np.outer(np.ones(N), teacher.beta)  # every neuron moved along beta
    a = np.random.default_rng(11).standard_normal(N)
    out = measure("kernel", build_context(teacher, W0, W, a=a, a0=a), n_probe=n)
    for key in ("ck", "ck0", "ntk", "ntk0"):
        eigs = out[f"kernel.{key}_eigs"]
        assert eigs.shape == (n,)
        assert eigs[-1] > -1e-10 * eigs[0]  # Gram matrices are PSD
        assert -1.0 <= out[f"kernel.{key}_alignment"] <= 1.0
    # features of <x, beta> align the CK with a relu(<x, beta>) target more than at init
    assert out["kernel.ck_alignment"] > out["kernel.ck0_alignment"]
    perm = np.random.default_rng(12).permutation(N)
    outp = measure(
        "kernel", build_context(teacher, W0[perm], W[perm], a=a[perm], a0=a[perm]), n_probe=n
    )
    for key, value in out.items():
        np.testing.assert_allclose(outp[key], value, rtol=1e-9, atol=1e-10)


def test_kernel_target_alignment_oracles() -> None:
    y = np.random.default_rng(13).standard_normal(20)
    assert kernel_target_alignment(np.outer(y, y), y) == pytest.approx(1.0)
    assert kernel_target_alignment(7.0 * np.outer(y, y), y) == pytest.approx(1.0)
    assert kernel_target_alignment(np.eye(20), y) == pytest.approx(1 / np.sqrt(20))
    z = np.random.default_rng(14).standard_normal(20)
    z -= (z @ y) / (y @ y) * y
    assert kernel_target_alignment(np.outer(z, z), y) == pytest.approx(0.0, abs=1e-12)


def test_kernel_unchanged_student() -> None:
    d, N = 20, 30
    W0 = noise_matrix(N, d, 15)
    out = measure("kernel", build_context(single_index(d), W0), n_probe=40, top_k=5)
    np.testing.assert_allclose(out["kernel.ck_eigs"], out["kernel.ck0_eigs"])
    assert out["kernel.ntk_eigs"].shape == (5,)
