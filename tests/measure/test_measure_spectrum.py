"""Spectra: the Gram and Lanczos paths against LAPACK's SVD; the measurement's normalisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from measure_helpers import build_context, noise_matrix, single_index

from twolayer.measure import measure
from twolayer.measure._linalg import singular_values, top_singular_triplets


@pytest.mark.parametrize("shape", [(30, 50), (50, 30), (40, 40)])
@pytest.mark.parametrize("method", ["gram", "direct", "auto"])
def test_singular_values_match_numpy_svd(shape: tuple[int, int], method: str) -> None:
    # Gram path: absolute error ~ eps * s_max^2 / s; these Gaussian matrices have s_min / s_max
    # >~ 1e-3 (square case) so 1e-9 * s_max is ample, and far below any real discrepancy.
    M = np.random.default_rng(sum(shape)).standard_normal(shape)
    expected = np.linalg.svd(M, compute_uv=False)
    got = singular_values(M, method=method)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9 * expected[0])


def test_lanczos_top_k_matches_direct() -> None:
    # ARPACK converges to machine precision (tol=0); 1e-9 relative leaves room for the restart.
    M = np.random.default_rng(3).standard_normal((300, 200))
    M[:, 0] += 5.0  # a gap at the top, as in a trained W
    expected = np.linalg.svd(M, compute_uv=False)[:6]
    np.testing.assert_allclose(singular_values(M, 6, method="lanczos"), expected, rtol=1e-9)


@pytest.mark.parametrize("method", ["gram", "direct", "lanczos"])
@pytest.mark.parametrize("shape", [(120, 80), (80, 120)])
def test_top_triplets_are_singular_triplets(method: str, shape: tuple[int, int]) -> None:
    # M v = s u and M^T u = s v for each returned triplet, with orthonormal vectors.
    M = np.random.default_rng(7).standard_normal(shape)
    U, s, Vt = top_singular_triplets(M, 4, method)
    np.testing.assert_allclose(s, np.linalg.svd(M, compute_uv=False)[:4], rtol=1e-9)
    np.testing.assert_allclose(M @ Vt.T, U * s, atol=1e-8 * s[0])
    np.testing.assert_allclose(M.T @ U, Vt.T * s, atol=1e-8 * s[0])
    np.testing.assert_allclose(U.T @ U, np.eye(4), atol=1e-9)
    np.testing.assert_allclose(Vt @ Vt.T, np.eye(4), atol=1e-9)


def test_spectrum_measurement_normalisation() -> None:
    d, N, n = 60, 80, 150
    W0 = noise_matrix(N, d, 0)
    W = W0 + 0.5 * noise_matrix(N, d, 1)
    ctx = build_context(single_index(d), W0, W)
    out = measure("spectrum", ctx, n_probe=n)
    np.testing.assert_allclose(out["spectrum.W_sv"], np.linalg.svd(W, compute_uv=False), atol=1e-10)
    np.testing.assert_allclose(
        out["spectrum.dW_sv"], np.linalg.svd(W - W0, compute_uv=False), atol=1e-10
    )
    X, _ = ctx.probe(n, 0)  # the same probe stream as the measurement
    F = np.maximum(X @ W.T, 0.0)
    np.testing.assert_allclose(
        out["spectrum.F_sv"], np.linalg.svd(F, compute_uv=False) / math.sqrt(n), atol=1e-10
    )
    s_dW = out["spectrum.dW_sv"]
    assert out["spectrum.dW_stable_rank"] == pytest.approx(np.sum(s_dW**2) / s_dW[0] ** 2)
    assert out["spectrum.dW_fro"] == pytest.approx(np.linalg.norm(W - W0))


def test_spectrum_of_unchanged_student_and_center_option() -> None:
    d, N = 40, 50
    W0 = noise_matrix(N, d, 2)
    ctx = build_context(single_index(d), W0)
    out = measure("spectrum", ctx, n_probe=100, top_k=5)
    assert out["spectrum.dW_top"] == 0.0
    assert out["spectrum.W_sv"].shape == (5,)
    np.testing.assert_allclose(out["spectrum.F_sv"], out["spectrum.F0_sv"])
    # relu features have mean mu_0 = 1/sqrt(2 pi) per entry: one outlier ~ mu_0 sqrt(N) that
    # centring removes (the centred top singular value is O(1 + sqrt(N/n)))
    centred = measure("spectrum", ctx, n_probe=100, top_k=5, center_features=True)
    assert out["spectrum.F_top"] > 0.8 * math.sqrt(N) / math.sqrt(2 * math.pi)
    assert centred["spectrum.F_top"] < 0.5 * out["spectrum.F_top"]


def test_spectrum_invariant_under_neuron_permutation() -> None:
    d, N = 30, 40
    W0, W = noise_matrix(N, d, 3), noise_matrix(N, d, 4)
    a = np.random.default_rng(5).standard_normal(N)
    perm = np.random.default_rng(6).permutation(N)
    teacher = single_index(d)
    out = measure("spectrum", build_context(teacher, W0, W, a=a, a0=a), n_probe=70)
    outp = measure(
        "spectrum", build_context(teacher, W0[perm], W[perm], a=a[perm], a0=a[perm]), n_probe=70
    )
    for key in ("W_sv", "dW_sv", "F_sv", "F0_sv"):
        np.testing.assert_allclose(outp[f"spectrum.{key}"], out[f"spectrum.{key}"], atol=1e-10)
